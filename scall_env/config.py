"""Every setting of the environment in one frozen, validated value: :class:`EnvConfig`.

``gym.make(id, **kwargs)`` and ``ScallEnv(**kwargs)`` build an :class:`EnvConfig` from their
keywords; validation happens here, once, before anything is loaded or trained. The stream,
training, budget and sizer views that the search core needs are derived from it.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scall_env.cache import default_cache_dir
from scall_env.data import check_dataset
from scall_env.recsys import MODELS, TrainConfig, resolve_device
from scall_env.sizing import (
    RATIO_BASES,
    Budget,
    DistributionSizer,
    Sizer,
    available_distributions,
)
from scall_env.stream import StreamConfig

CommitPolicy = Callable[[np.ndarray], np.ndarray]
"""Maps an observation to an action in ``[-1, 1]^3`` (e.g. an agent's deterministic predict)."""

COMMIT_MODES = ("auto", "policy", "best", "last", "first")
"""How the env picks the action it commits (see :class:`EnvConfig`)."""
SEARCH_MODES = ("adaptive", "fixed")
"""When the search on a segment ends: the authors' stopping rule, or after ``search_steps``."""
TRIAL_SIZINGS = ("paper", "exact")
"""Trial sizes as the authors' search makes them (uncorrected), or spending the budget exactly."""
OBSERVATIONS = ("paper", "bounded")
"""The authors' 1028-number state, or our bounded, normalised layout."""


@dataclass(frozen=True)
class EnvConfig:
    """The keywords of ``gym.make`` for the SCALL environments, validated.

    Defaults are the paper's MovieLens-1M protocol. See :class:`scall_env.env.ScallEnv` for the
    meaning of each argument. Integers may be Python or numpy integers (stored as ``int``);
    ``budget`` and the training rates any finite real numbers.

    Raises:
        ValueError: A setting out of range or of the wrong type, with what is allowed.
        TypeError: A dataset option the dataset does not take (the message lists those it takes).
    """

    dataset: str = "ml-1m"
    data_dir: str | os.PathLike | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    n_segments: int = 10
    k_core: int = 10
    replay_ratio: float = 0.2
    segmentation: str = "count"
    new_entity_threshold: int = 15_000
    time_window: float | None = None
    stream_seed: int = 0
    budget_type: str = "c"
    budget: float = 32
    distribution: str = "powerlaw"
    sizer: Sizer | None = None
    base_model: str = "lightgcn"
    d_max: int = 256
    min_size: int = 1
    n_groups: int = 256
    search: str = "adaptive"
    search_steps: int = 11
    search_window: int = 5
    search_tolerance: float = 0.01
    search_max_steps: int = 60
    trial_sizing: str = "paper"
    ratio_base: str = "budget"
    observation: str = "paper"
    trial_batches: int = 200
    batch_size: int = 10_000
    lr: float = 0.03
    l2_reg: float = 1e-4
    max_chunks: int = 50
    flush_denormals: bool = True
    reward_bounds: tuple[float, float] = (0.9, 1.1)
    device: str | torch.device = "auto"
    cache_dir: str | os.PathLike | None = None
    use_cache: bool = True
    commit: str = "auto"
    commit_policy: CommitPolicy | None = None

    def __post_init__(self) -> None:
        for name, low in (
            ("n_segments", 1),
            ("k_core", 1),
            ("new_entity_threshold", 1),
            ("stream_seed", 0),
            ("d_max", 1),
            ("min_size", 1),
            ("n_groups", 1),
            ("search_steps", 1),
            ("search_window", 1),
            ("search_max_steps", 1),
            ("trial_batches", 1),
            ("batch_size", 1),
            ("max_chunks", 1),
        ):
            self._set(name, _integer(name, getattr(self, name), low))
        for name in ("lr", "l2_reg", "replay_ratio", "budget", "search_tolerance"):
            _real(name, getattr(self, name))
        for name, allowed in (
            ("search", SEARCH_MODES),
            ("trial_sizing", TRIAL_SIZINGS),
            ("ratio_base", RATIO_BASES),
            ("observation", OBSERVATIONS),
            ("commit", COMMIT_MODES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.search_tolerance < 0:
            raise ValueError(f"search_tolerance must be >= 0, got {self.search_tolerance!r}")
        if self.search_max_steps < self.search_steps:
            raise ValueError(
                f"search_max_steps ({self.search_max_steps}) must be >= search_steps "
                f"({self.search_steps})"
            )
        if self.min_size > self.d_max:
            raise ValueError(f"min_size ({self.min_size}) must not exceed d_max ({self.d_max})")
        self.parameter_budget  # noqa: B018  (validates budget_type and budget)
        if not isinstance(self.base_model, str) or self.base_model.lower() not in MODELS:
            raise ValueError(
                f"unknown base_model {self.base_model!r}; choose from {sorted(MODELS)}"
            )
        self._set("base_model", self.base_model.lower())
        if self.sizer is None and self.distribution not in available_distributions():
            raise ValueError(
                f"unknown distribution {self.distribution!r}; "
                f"known: {', '.join(available_distributions())}"
            )
        if self.sizer is not None and not callable(getattr(self.sizer, "sizes", None)):
            raise ValueError(
                f"sizer must implement scall_env.sizing.Sizer (a .sizes(...) method), "
                f"got {type(self.sizer).__name__}"
            )
        self._set("reward_bounds", _reward_bounds(self.reward_bounds))
        if self.commit_policy is not None and not callable(self.commit_policy):
            raise ValueError(
                "commit_policy must be a callable observation -> action, "
                f"got {type(self.commit_policy).__name__}"
            )
        if not isinstance(self.dataset_options, dict):
            raise ValueError(
                f"dataset_options must be a dict, got {type(self.dataset_options).__name__}"
            )
        self._set("dataset_options", dict(self.dataset_options))
        check_dataset(self.dataset, self.dataset_options)
        for name in ("data_dir", "cache_dir"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str | os.PathLike):
                raise ValueError(f"{name} must be a path or None, got {value!r}")
        for name in ("flush_denormals", "use_cache"):
            value = getattr(self, name)
            if not isinstance(value, bool | np.bool_):
                raise ValueError(f"{name} must be True or False, got {value!r}")
            self._set(name, bool(value))
        self._set("device", resolve_device(self.device))
        self.stream_config  # noqa: B018  (validates the stream settings)
        self.train_config  # noqa: B018  (validates the training settings)

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> EnvConfig:
        """Build from ``gym.make`` keywords; an unknown keyword is a ``TypeError``."""
        unknown = sorted(set(kwargs) - set(cls.keywords()))
        if unknown:
            raise TypeError(
                f"unknown ScallEnv arguments {unknown}; allowed: {', '.join(cls.keywords())}"
            )
        return cls(**kwargs)

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """The keyword names ``gym.make`` accepts, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @property
    def stream_config(self) -> StreamConfig:
        """The stream settings."""
        return StreamConfig(
            k_core=self.k_core,
            segmentation=self.segmentation,  # type: ignore[arg-type]
            n_segments=self.n_segments,
            new_entity_threshold=self.new_entity_threshold,
            time_window=self.time_window,
            replay_ratio=self.replay_ratio,
            seed=self.stream_seed,
        )

    @property
    def train_config(self) -> TrainConfig:
        """The training settings (a chunk is ``trial_batches`` batches)."""
        return TrainConfig(
            batch_size=self.batch_size,
            lr=self.lr,
            l2_reg=self.l2_reg,
            chunk_batches=self.trial_batches,
            max_chunks=self.max_chunks,
            flush_denormals=self.flush_denormals,
        )

    @property
    def max_segment_trials(self) -> int:
        """The most trials one segment's search runs: ``search_steps`` (fixed search) or
        ``search_max_steps`` (adaptive)."""
        return self.search_steps if self.search == "fixed" else self.search_max_steps

    @property
    def parameter_budget(self) -> Budget:
        """The budget rule (``budget_type``, ``budget``)."""
        return Budget(self.budget_type, self.budget)

    def make_sizer(self) -> Sizer:
        """The sizer: ``sizer`` when given, else SCALL's over ``distribution``."""
        if self.sizer is not None:
            return self.sizer
        return DistributionSizer(self.distribution, ratio_base=self.ratio_base)

    @property
    def cache_folder(self) -> Path | None:
        """Where caches live, or ``None`` when ``use_cache`` is off."""
        if not self.use_cache:
            return None
        return Path(self.cache_dir) if self.cache_dir is not None else default_cache_dir()


def _integer(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _real(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")


def _reward_bounds(bounds: Any) -> tuple[float, float]:
    message = f"reward_bounds must be finite with 0 <= low < high, got {bounds!r}"
    try:
        low, high = (float(v) for v in bounds)
    except (TypeError, ValueError) as exc:
        raise ValueError(message + " (expected two numbers (low, high))") from exc
    if not (math.isfinite(low) and math.isfinite(high) and 0 <= low < high):
        raise ValueError(message)
    return low, high
