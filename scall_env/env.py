"""The SCALL embedding-size search as a Gymnasium environment."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from scall_env.data import default_cache_dir
from scall_env.recsys import MODELS, Evaluator, Recommender, TrainConfig, make_model, resolve_device
from scall_env.recsys.training import train_batches, train_to_convergence
from scall_env.segment import Segment
from scall_env.sizing import (
    BUDGET_TYPES,
    DistributionSizer,
    SizeAssignment,
    Sizer,
    UniformSizer,
    budget_params,
)
from scall_env.stream import Stream, StreamConfig, load_stream

CommitPolicy = Callable[[np.ndarray], np.ndarray]
"""Maps an observation to an action in ``[-1, 1]^3`` (e.g. an agent's deterministic predict)."""

ACTION_EPS = 1e-6
"""The action box ``[-1, 1]`` maps affinely onto ``[ACTION_EPS, 1 - ACTION_EPS]``."""
REWARD_SCALE = 10.0
"""Rewards are ``REWARD_SCALE * (fitness / reference - low) / (high - low)``."""
N_EXTRA_FEATURES = 6
"""Observation entries besides the pooled frequencies and mean embeddings."""


def pooled_frequencies(freq: np.ndarray, n_groups: int) -> np.ndarray:
    """Sorted (descending), min-max normalised frequencies mean-pooled into ``n_groups`` groups.

    Group ``g`` averages ranks ``[g*n // n_groups, (g+1)*n // n_groups)``; when there are fewer
    entities than groups, an empty group repeats the entity at its start, so the curve keeps its
    shape whatever ``n``. A constant frequency vector normalises to zeros.

    Args:
        freq: Count per entity (any order, at least one entity).
        n_groups: Output length.

    Returns:
        ``float32`` array of length ``n_groups`` in ``[0, 1]``, non-increasing.
    """
    values = np.sort(np.asarray(freq, dtype=np.float64))[::-1]
    span = values[0] - values[-1]
    values = (values - values[-1]) / span if span > 0 else np.zeros_like(values)
    n = len(values)
    starts = (np.arange(n_groups, dtype=np.int64) * n) // n_groups
    counts = np.maximum(np.diff(np.r_[starts, n]), 1)
    return (np.add.reduceat(values, starts) / counts).astype(np.float32)


class ScallEnv(gym.Env[np.ndarray, np.ndarray]):
    """Embedding-size search under a parameter budget over a recommendation stream.

    ## Description
    A stream of user-item interactions is cut into segments ``D_0..D_{T-1}``. A recommender
    (LightGCN or MF) keeps one embedding per user and per item; entity ``i`` uses the first
    ``d_i`` of ``d_max`` columns, and the sizes of every segment must fit a parameter budget. On
    each segment the agent searches for a size *distribution*: its action shapes a distribution
    from which sizes are drawn (noiselessly) and handed out by frequency rank, a fresh model is
    trained briefly with them, and its recommendation quality is the reward. After
    ``search_steps`` trials the stream advances: sizes for the next segment are committed (from the
    attached commit policy, e.g. the agent's deterministic action, or the best trial's action),
    the model is warm-started and trained to convergence, and that segment's Recall/NDCG are
    recorded. This is SCALL's protocol (Qu et al., CIKM 2024).

    ## Action Space
    ``Box(-1, 1, (3,), float32)``, mapped affinely onto ``[1e-6, 1 - 1e-6]`` (inside ``(0, 1)``):

    | index | meaning |
    |---|---|
    | 0 | ``ratio``: share of the budget (above the minimum sizes) that goes to users |
    | 1 | ``alpha_user``: shape of the users' size distribution (0: most skewed, 1: flattest) |
    | 2 | ``alpha_item``: the same for items |

    With a baseline ``sizer`` (uniform, frequency) the action is accepted and ignored.
    A wrongly shaped, non-finite or out-of-box action raises ``ValueError``; nothing is clipped.

    ## Observation Space
    ``Box(-1, 1, (2 * n_groups + 2 * d_max + 6,), float32)``, for the segment being searched:

    | slice | meaning |
    |---|---|
    | ``[0, G)`` | user frequencies, sorted, min-max normalised, mean-pooled into ``G = n_groups`` |
    | ``[G, 2G)`` | the same for items |
    | ``2G`` | ``tanh(last reward / 10)`` (0 after a reset or commit) |
    | ``2G + 1`` | user share ``n_users / (n_users + n_items)`` |
    | ``2G + 2 : 2G + 2 + d_max`` | ``tanh`` of the mean raw user embedding of the committed model |
    | next ``d_max`` | the same for items |
    | next 2 | spread ``(max - min) / d_max`` of the last user and item sizes |
    | last 2 | progress: trials done / ``search_steps``; segment / ``(T - 1)`` |

    The length does not depend on the number of users and items.

    ## Rewards
    ``10 * (fitness / reference - low) / (high - low)`` with ``(low, high) = reward_bounds``
    (paper: ``(0.9, 1.1)``), where fitness is the mean of Recall@20 and NDCG@20 of the trial
    model on the segment's test set, and reference is the fitness of the committed, warm-started
    model after its first ``trial_batches`` batches on that segment.

    ## Starting State
    ``reset`` builds (or loads from the cache) the stream, checks the budget of every segment,
    and trains ``D_0`` to convergence with uniform sizes; the search then starts on ``D_0``. The
    segment-0 model is cached in memory and on disk, keyed by every setting and the seed.

    ## Episode End
    The episode terminates when the last segment has been committed, after
    ``search_steps * (T - 1)`` steps. It is never truncated by the environment itself.

    ## Info
    Every step: ``segment``, ``trial``, ``params_used``, ``budget_params``, ``fitness``,
    ``recall@K`` / ``ndcg@K`` (K = 5, 10, 20) of the trial, ``reference_fitness``,
    ``user_share`` (effective), and ``{user,item}_size_{min,mean,max}``. On a step where the
    stream advanced, ``info["commit"]`` holds the committed segment's ``segment``, ``recall@K``,
    ``ndcg@K``, ``fitness``, ``params_used``, ``budget_params``, ``chunks`` and ``action``.
    :attr:`committed` keeps those dicts for the whole episode (segment 0 first).

    ## Arguments
    Every argument is a keyword of ``gym.make``:

    * ``dataset`` (``"ml-1m"``), ``data_dir``, ``dataset_options``: the source
      (:func:`scall_env.data.load_interactions`).
    * ``n_segments`` (10), ``k_core`` (10), ``replay_ratio`` (0.2), ``segmentation``
      (``"count"``), ``new_entity_threshold``, ``time_window``, ``stream_seed`` (0): the stream
      (:class:`scall_env.stream.StreamConfig`).
    * ``budget_type`` (``"c"``) and ``budget`` (32): mean size, or megabytes of float32.
    * ``distribution`` (``"powerlaw"``): the size distribution of the default sizer; ``sizer``:
      any :class:`scall_env.sizing.Sizer` (the pluggable decision-to-sizes seam).
    * ``base_model`` (``"lightgcn"``; ``"mf"``), ``d_max`` (256), ``min_size`` (1).
    * ``n_groups`` (256): pooled frequency groups in the observation.
    * ``search_steps`` (11): trials per segment before the stream advances.
    * ``trial_batches`` (200): batches of a trial, and of a chunk when training to convergence.
    * ``batch_size`` (10,000), ``lr`` (0.03), ``l2_reg`` (1e-4), ``max_chunks`` (50): training.
    * ``reward_bounds`` (``(0.9, 1.1)``).
    * ``device`` (``"auto"``: CUDA when available), ``cache_dir``, ``use_cache`` (True).
    * ``commit_policy``: optional callable observation -> action used when committing.

    Seeding: ``reset(seed=s)`` seeds every trial and the segment-0 training; the same seed gives
    the same observations and rewards on CPU. A reset without a seed (e.g. a vectorised env's
    automatic reset) starts from the same segment-0 model as the previous episode, while its
    trials draw new seeds.

    ## Version History
    * v0: initial version.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        dataset: str = "ml-1m",
        data_dir: str | os.PathLike | None = None,
        dataset_options: dict[str, Any] | None = None,
        n_segments: int = 10,
        k_core: int = 10,
        replay_ratio: float = 0.2,
        segmentation: str = "count",
        new_entity_threshold: int = 15_000,
        time_window: float | None = None,
        stream_seed: int = 0,
        budget_type: str = "c",
        budget: float = 32,
        distribution: str = "powerlaw",
        sizer: Sizer | None = None,
        base_model: str = "lightgcn",
        d_max: int = 256,
        min_size: int = 1,
        n_groups: int = 256,
        search_steps: int = 11,
        trial_batches: int = 200,
        batch_size: int = 10_000,
        lr: float = 0.03,
        l2_reg: float = 1e-4,
        max_chunks: int = 50,
        reward_bounds: tuple[float, float] = (0.9, 1.1),
        device: str = "auto",
        cache_dir: str | os.PathLike | None = None,
        use_cache: bool = True,
        commit_policy: CommitPolicy | None = None,
    ) -> None:
        super().__init__()
        if budget_type not in BUDGET_TYPES:
            raise ValueError(f"budget_type must be one of {BUDGET_TYPES}, got {budget_type!r}")
        budget_params(budget_type, budget, 1, 0)  # validates the value
        for name, value, low in (
            ("d_max", d_max, 1),
            ("min_size", min_size, 1),
            ("n_groups", n_groups, 1),
            ("search_steps", search_steps, 1),
            ("trial_batches", trial_batches, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if min_size > d_max:
            raise ValueError(f"min_size ({min_size}) must not exceed d_max ({d_max})")
        low, high = (float(v) for v in reward_bounds)
        if not (np.isfinite(low) and np.isfinite(high) and 0 <= low < high):
            raise ValueError(
                f"reward_bounds must be finite with 0 <= low < high, got {reward_bounds}"
            )
        self.stream_config = StreamConfig(
            k_core=k_core,
            segmentation=segmentation,  # type: ignore[arg-type]
            n_segments=n_segments,
            new_entity_threshold=new_entity_threshold,
            time_window=time_window,
            replay_ratio=replay_ratio,
            seed=stream_seed,
        )
        self.train_config = TrainConfig(
            batch_size=batch_size,
            lr=lr,
            l2_reg=l2_reg,
            chunk_batches=trial_batches,
            max_chunks=max_chunks,
        )
        self.dataset = dataset
        self.data_dir = data_dir
        self.dataset_options = dict(dataset_options or {})
        self.budget_type = budget_type
        self.budget = budget
        self.sizer: Sizer = sizer if sizer is not None else DistributionSizer(distribution)
        if base_model.lower() not in MODELS:
            raise ValueError(f"unknown base_model {base_model!r}; choose from {sorted(MODELS)}")
        self.base_model = base_model.lower()
        self.d_max = int(d_max)
        self.min_size = int(min_size)
        self.n_groups = int(n_groups)
        self.search_steps = int(search_steps)
        self.trial_batches = int(trial_batches)
        self.reward_bounds = (low, high)
        self.device = resolve_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.use_cache = use_cache
        self.commit_policy = commit_policy

        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        dim = 2 * self.n_groups + 2 * self.d_max + N_EXTRA_FEATURES
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)

        self._stream: Stream | None = None
        self._evaluators: dict[int, Evaluator] = {}
        self._segment0_cache: dict[int, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        self._segment0_seed: int | None = None
        self.committed: list[dict[str, Any]] = []
        self._reset_state()

    # ------------------------------------------------------------------ state
    def _reset_state(self) -> None:
        self._segment_index = 0
        self._trial = 0
        self._model: Recommender | None = None
        self._reference = float("nan")
        self._last_reward = 0.0
        self._last_sizes: SizeAssignment | None = None
        self._committed_sizes: SizeAssignment | None = None
        self._trial_log: list[tuple[float, np.ndarray]] = []

    @property
    def stream(self) -> Stream:
        """The stream (built or loaded from the cache on first use)."""
        if self._stream is None:
            self._stream = load_stream(
                self.dataset,
                config=self.stream_config,
                data_dir=self.data_dir,
                cache_dir=self.cache_dir,
                use_cache=self.use_cache,
                **self.dataset_options,
            )
        return self._stream

    @property
    def committed_sizes(self) -> SizeAssignment | None:
        """Sizes of the last committed segment (``None`` before :meth:`reset`)."""
        return self._committed_sizes

    @property
    def segment_index(self) -> int:
        """Index of the segment being searched (the last committed one)."""
        return self._segment_index

    def _evaluator(self, segment: Segment) -> Evaluator:
        if segment.index not in self._evaluators:
            self._evaluators[segment.index] = Evaluator(segment, device=self.device)
        return self._evaluators[segment.index]

    def _budget(self, segment: Segment) -> int:
        return budget_params(self.budget_type, self.budget, segment.n_users, segment.n_items)

    def check_budget(self) -> None:
        """Raise ``ValueError`` if the stream has fewer than 2 segments (nothing to search and
        commit), or if some segment's entities do not fit the budget at ``min_size``."""
        if len(self.stream) < 2:
            raise ValueError(
                f"the stream has {len(self.stream)} segment; the search needs at least 2 "
                "(segment 0 is trained with uniform sizes, later ones are searched and committed)"
            )
        for t in range(len(self.stream)):
            n_users, n_items = self.stream.entity_counts(t)
            need = (n_users + n_items) * self.min_size
            have = budget_params(self.budget_type, self.budget, n_users, n_items)
            if have < need:
                raise ValueError(
                    f"budget {self.budget_type}={self.budget} allows {have} parameters on "
                    f"segment {t}, but its {n_users} users and {n_items} items need at least "
                    f"{need} at min_size={self.min_size}"
                )

    # -------------------------------------------------------------- helpers
    def to_decision(self, action: np.ndarray) -> np.ndarray:
        """Validate an action and map it from ``[-1, 1]^3`` onto ``[1e-6, 1 - 1e-6]^3``.

        Raises:
            ValueError: Wrong shape, a non-finite value, or a value outside ``[-1, 1]``.
        """
        array = np.asarray(action, dtype=np.float64)
        if array.shape != (3,):
            raise ValueError(f"action must have shape (3,), got {array.shape}")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"action must be finite, got {array.tolist()}")
        if np.any(np.abs(array) > 1.0):
            raise ValueError(f"action values must lie in [-1, 1], got {array.tolist()}")
        return ACTION_EPS + (1.0 - 2.0 * ACTION_EPS) * (array + 1.0) / 2.0

    def _sizes(self, action: np.ndarray, segment: Segment) -> SizeAssignment:
        return self.sizer.sizes(
            self.to_decision(action),
            segment.user_freq,
            segment.item_freq,
            self._budget(segment),
            d_max=self.d_max,
            min_size=self.min_size,
        )

    def _new_model(self, segment: Segment, sizes: SizeAssignment, seed: int) -> Recommender:
        return make_model(
            self.base_model,
            segment,
            sizes.user_sizes,
            sizes.item_sizes,
            d_max=self.d_max,
            seed=seed,
            device=self.device,
        )

    def _next_seed(self) -> int:
        return int(self.np_random.integers(2**31 - 1))

    def _observation(self, segment: Segment) -> np.ndarray:
        assert self._model is not None
        user_mean, item_mean = np.zeros((2, self.d_max), dtype=np.float32)
        with torch.no_grad():
            user_raw, item_raw = self._model.raw_embeddings()
            user_mean[: user_raw.shape[1]] = user_raw.mean(dim=0).cpu().numpy()
            item_mean[: item_raw.shape[1]] = item_raw.mean(dim=0).cpu().numpy()
        sizes = self._last_sizes
        spread = np.zeros(2, dtype=np.float32)
        if sizes is not None:
            spread[:] = [np.ptp(sizes.user_sizes), np.ptp(sizes.item_sizes)]
            spread /= self.d_max
        n_entities = segment.n_users + segment.n_items
        progress = [self._trial / self.search_steps, segment.index / max(len(self.stream) - 1, 1)]
        return np.concatenate(
            [
                pooled_frequencies(segment.user_freq, self.n_groups),
                pooled_frequencies(segment.item_freq, self.n_groups),
                [np.tanh(self._last_reward / REWARD_SCALE), segment.n_users / n_entities],
                np.tanh(user_mean),
                np.tanh(item_mean),
                spread,
                progress,
            ]
        ).astype(np.float32)

    def _settings_key(self, seed: int) -> str:
        settings = {
            "stream": self.stream.config.cache_key(self.stream.fingerprint),
            "train": asdict(self.train_config),
            "base_model": self.base_model,
            "d_max": self.d_max,
            "min_size": self.min_size,
            "budget": [self.budget_type, float(self.budget)],
            "device": self.device.type,
            "seed": seed,
        }
        return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:24]

    def _train_segment0(self, seed: int) -> dict[str, Any]:
        """Uniform sizes on ``D_0``, trained to convergence; cached in memory and on disk."""
        segment = self.stream.segment(0)
        sizes = UniformSizer().sizes(
            None,
            segment.user_freq,
            segment.item_freq,
            self._budget(segment),
            d_max=self.d_max,
            min_size=self.min_size,
        )
        self._model = self._new_model(segment, sizes, seed)
        key = self._settings_key(seed)
        path = self.cache_dir / "segment0" / f"{key}.pt"
        if seed in self._segment0_cache:
            state, record = self._segment0_cache[seed]
        elif self.use_cache and path.exists():
            try:
                saved = torch.load(path, map_location=self.device, weights_only=True)
                state, record = saved["state"], json.loads(saved["record"])
            except (OSError, RuntimeError, KeyError, ValueError, EOFError):
                state, record = self._converge_segment0(segment, seed, path)
        else:
            state, record = self._converge_segment0(segment, seed, path)
        self._segment0_cache[seed] = (state, record)
        self._model.load_state_dict(state)
        self._last_sizes = self._committed_sizes = sizes
        return record

    def _converge_segment0(
        self, segment: Segment, seed: int, path: Path
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        assert self._model is not None
        sizes_used = self._model.n_params
        result = train_to_convergence(
            self._model,
            segment,
            self.train_config,
            seed=seed,
            evaluator=self._evaluator(segment),
        )
        record = self._commit_record(segment, result, sizes_used, None)
        state = {k: v.detach().clone() for k, v in self._model.state_dict().items()}
        if self.use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            torch.save({"state": state, "record": json.dumps(record)}, tmp)
            os.replace(tmp, path)
        return state, record

    def _commit_record(
        self, segment: Segment, result: Any, params_used: int, action: np.ndarray | None
    ) -> dict[str, Any]:
        return {
            "segment": segment.index,
            **{k: float(v) for k, v in result.metrics.items()},
            "reference_fitness": float(result.fitness[0]),
            "params_used": int(params_used),
            "budget_params": self._budget(segment),
            "chunks": int(result.chunks_run),
            "action": None if action is None else [float(a) for a in action],
        }

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a pass over the stream: ``D_0`` is trained with uniform sizes (cached).

        Args:
            seed: Seeds the environment's generator (trials and segment-0 training).
            options: Unused.

        Returns:
            The observation of segment 0 and ``{"commit": <segment-0 record>}``.
        """
        super().reset(seed=seed)
        self.check_budget()
        self._reset_state()
        if seed is not None or self._segment0_seed is None:
            self._segment0_seed = self._next_seed()
        record = self._train_segment0(self._segment0_seed)
        self._reference = record["reference_fitness"]
        self.committed = [record]
        return self._observation(self.stream.segment(0)), {"commit": dict(record)}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one search trial on the current segment; advance after ``search_steps`` trials.

        Raises:
            RuntimeError: Called before :meth:`reset` or after the episode terminated.
            ValueError: A malformed action.
        """
        if self._model is None:
            raise RuntimeError("call reset() before step()")
        if self._segment_index >= len(self.stream) - 1:
            raise RuntimeError("the episode has terminated (every segment is committed); reset()")
        segment = self.stream.segment(self._segment_index)
        sizes = self._sizes(action, segment)
        seed = self._next_seed()
        model = self._new_model(segment, sizes, seed)
        train_batches(model, segment, self.trial_batches, self.train_config, seed=seed)
        metrics = self._evaluator(segment).evaluate(model)
        low, high = self.reward_bounds
        ratio = metrics["fitness"] / self._reference if self._reference > 0 else 0.0
        reward = REWARD_SCALE * (ratio - low) / (high - low)
        self._last_reward = reward
        self._last_sizes = sizes
        self._trial += 1
        self._trial_log.append((reward, np.asarray(action, dtype=np.float32).copy()))
        info: dict[str, Any] = {
            "segment": segment.index,
            "trial": self._trial - 1,
            **{k: float(v) for k, v in metrics.items()},
            "reference_fitness": self._reference,
            "params_used": sizes.params_used,
            "budget_params": sizes.budget_params,
            "user_share": sizes.user_share,
            **_size_stats("user", sizes.user_sizes),
            **_size_stats("item", sizes.item_sizes),
        }
        terminated = False
        if self._trial >= self.search_steps:
            info["commit"] = self.advance()
            terminated = self._segment_index >= len(self.stream) - 1
            segment = self.stream.segment(self._segment_index)
        return self._observation(segment), float(reward), terminated, False, info

    def advance(self, action: np.ndarray | None = None) -> dict[str, Any]:
        """Commit sizes for the next segment, warm-start, train to convergence, record metrics.

        The action is, in order of precedence: ``action``, the attached ``commit_policy`` applied
        to the next segment's observation, or the action of the best-rewarded trial on the
        current segment (the first one on ties; zeros when there was no trial).

        Args:
            action: Explicit commit action in ``[-1, 1]^3``.

        Returns:
            The committed segment's record (also appended to :attr:`committed`).

        Raises:
            RuntimeError: Before :meth:`reset`, or when every segment is already committed.
        """
        if self._model is None:
            raise RuntimeError("call reset() before advance()")
        if self._segment_index >= len(self.stream) - 1:
            raise RuntimeError("every segment is already committed; reset()")
        nxt = self.stream.segment(self._segment_index + 1)
        if action is None and self.commit_policy is not None:
            self._trial = 0
            self._last_reward = 0.0
            action = self.commit_policy(self._observation(nxt))
        if action is None:
            action = (
                max(self._trial_log, key=lambda entry: entry[0])[1]
                if self._trial_log
                else np.zeros(3, dtype=np.float32)
            )
        sizes = self._sizes(action, nxt)
        model = self._new_model(nxt, sizes, self._next_seed())
        model.warm_start(self._model)
        result = train_to_convergence(
            model, nxt, self.train_config, seed=self._next_seed(), evaluator=self._evaluator(nxt)
        )
        self._evaluators.pop(self._segment_index, None)
        record = self._commit_record(nxt, result, sizes.params_used, np.asarray(action))
        self.committed.append(record)
        self._model = model
        self._segment_index = nxt.index
        self._reference = record["reference_fitness"]
        self._trial = 0
        self._last_reward = 0.0
        self._last_sizes = self._committed_sizes = sizes
        self._trial_log = []
        return dict(record)


def _size_stats(prefix: str, sizes: np.ndarray) -> dict[str, int | float]:
    return {
        f"{prefix}_size_min": int(sizes.min()),
        f"{prefix}_size_mean": float(sizes.mean()),
        f"{prefix}_size_max": int(sizes.max()),
    }
