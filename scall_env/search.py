"""SCALL's search protocol without Gymnasium: start, trial, commit.

:class:`SearchCore` owns the stream, the committed model, the reference fitness and the
evaluators, and runs the three operations of the protocol:

* :meth:`~SearchCore.start`: segment ``D_0`` with uniform sizes, trained to convergence (cached
  in memory and on disk, keyed by every setting and the seed);
* :meth:`~SearchCore.trial`: sizes from a decision on the segment being searched, a fresh model
  trained ``trial_batches`` batches, its metrics (what the agent is rewarded for);
* :meth:`~SearchCore.commit`: sizes from a decision on the *next* segment, the model warm-started
  from the committed one and trained to convergence, its metrics recorded; the stream advances.

The Gymnasium env (:mod:`scall_env.env`), the benchmarks and the reference script all run the
protocol through this class, so what they time and report is what the env does. Seeds are
arguments: the caller decides where they come from (the env draws them from its generator).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from scall_env.cache import ModelCache
from scall_env.config import EnvConfig
from scall_env.recsys import Evaluator, Recommender, make_model
from scall_env.recsys.training import (
    ConvergenceResult,
    DivergenceError,
    train_batches,
    train_to_convergence,
)
from scall_env.segment import Segment
from scall_env.sizing import DistributionSizer, SizeAssignment, SizeDecision, UniformSizer
from scall_env.stream import Stream, load_stream

SEGMENT0_CACHE_VERSION = 3
"""Bumped whenever the segment-0 training or its record changes meaning."""


def search_over(config: EnvConfig, trials: int, ratios: Sequence[float]) -> bool:
    """The protocol's stopping rule: whether the search on a segment ends after ``trials`` trials.

    Args:
        config: The settings (``search``, ``search_steps``, ``search_window``,
            ``search_tolerance``, ``search_max_steps``).
        trials: Trials run on the segment so far.
        ratios: The policy's ``ratio`` after each of them (used by the adaptive search only).
    """
    if config.search == "fixed":
        return trials >= config.search_steps
    if trials >= config.search_max_steps:
        return True
    window = ratios[-config.search_window :]
    settled = (
        len(window) == config.search_window and max(window) - min(window) <= config.search_tolerance
    )
    return trials >= config.search_steps and settled


def constant_policy_trials(config: EnvConfig) -> int:
    """Trials the search on a segment takes when the policy's ``ratio`` never changes.

    That is the search of an agent whose action is the same on every observation (a baseline):
    its seeds are what :meth:`scall_env.env.ScallEnv.advance` skips with ``skip_search=True``.
    """
    trials = 1
    while not search_over(config, trials, [0.5] * trials):
        trials += 1
    return trials


@dataclass
class SegmentSearch:
    """The search on the segment being searched: its trials and what the stopping rule watched.

    Attributes:
        trials: Trials run so far.
        last_reward: The last trial's reward (0 before the first).
        log: ``(reward, action)`` of every trial, in order.
        policy_ratios: The policy's ``ratio`` after each trial (adaptive search only).
    """

    trials: int = 0
    last_reward: float = 0.0
    log: list[tuple[float, np.ndarray]] = field(default_factory=list)
    policy_ratios: list[float] = field(default_factory=list)

    def add(self, reward: float, action: np.ndarray) -> None:
        """Count one trial of ``action`` that earned ``reward``."""
        self.trials += 1
        self.last_reward = reward
        self.log.append((reward, np.asarray(action, dtype=np.float32).copy()))

    def over(self, config: EnvConfig) -> bool:
        """Whether the search ends now (:func:`search_over`)."""
        return search_over(config, self.trials, self.policy_ratios)

    def action(self, mode: str) -> np.ndarray:
        """The action of the ``"best"`` (first on ties), ``"last"`` or ``"first"`` trial; zeros
        before any trial."""
        if not self.log:
            return np.zeros(3, dtype=np.float32)
        if mode == "best":
            return max(self.log, key=lambda entry: entry[0])[1]
        return self.log[-1 if mode == "last" else 0][1]


@dataclass(frozen=True)
class TrialResult:
    """One search trial.

    Attributes:
        segment: Index of the segment searched.
        sizes: The sizes tried.
        metrics: Recall/NDCG@{5,10,20} and ``fitness`` of the trial model.
        model: The trial model (fresh, trained ``trial_batches`` batches).
    """

    segment: int
    sizes: SizeAssignment
    metrics: dict[str, float]
    model: Recommender

    @property
    def fitness(self) -> float:
        """Mean of Recall@20 and NDCG@20 over the segment's test users."""
        return float(self.metrics["fitness"])

    def summary(self) -> dict[str, Any]:
        """The segment, metrics, parameters used and budget, user share and size statistics."""
        sizes = self.sizes
        return {
            "segment": self.segment,
            **{k: float(v) for k, v in self.metrics.items()},
            "params_used": sizes.params_used,
            "budget_params": sizes.budget_params,
            "user_share": sizes.user_share,
            **sizes.summary(),
        }


class SearchCore:
    """The protocol's state and operations for one :class:`~scall_env.config.EnvConfig`.

    Attributes:
        config: The settings.
        sizer: Maps decisions to sizes.
        model: The committed model (``None`` before :meth:`start`).
        segment_index: The last committed segment, which is the one being searched.
        reference: Fitness of the committed model after its first chunk on that segment.
        committed: Records of the committed segments (segment 0 first).
        committed_sizes: Sizes of the last committed segment.
        last_convergence: The training curves of the last :meth:`start` or :meth:`commit`
            (``None`` when segment 0 came from the cache).
    """

    def __init__(self, config: EnvConfig) -> None:
        self.config = config
        self.sizer = config.make_sizer()
        self.budget = config.parameter_budget
        self._stream: Stream | None = None
        self._evaluators: dict[int, Evaluator] = {}
        self._segment0: dict[int, tuple[dict[str, torch.Tensor], dict[str, Any]]] = {}
        folder = config.cache_folder
        self._model_cache = ModelCache(None if folder is None else folder / "segment0")
        self.model: Recommender | None = None
        self.segment_index = 0
        self.reference = float("nan")
        self.committed: list[dict[str, Any]] = []
        self.committed_sizes: SizeAssignment | None = None
        self.last_convergence: ConvergenceResult | None = None

    # ------------------------------------------------------------------ inputs
    @property
    def stream(self) -> Stream:
        """The stream (built, or loaded from the cache, on first use)."""
        if self._stream is None:
            cfg = self.config
            self._stream = load_stream(
                cfg.dataset,
                config=cfg.stream_config,
                data_dir=cfg.data_dir,
                cache_dir=cfg.cache_folder,
                use_cache=cfg.use_cache,
                **cfg.dataset_options,
            )
        return self._stream

    @property
    def n_segments(self) -> int:
        """Segments in the stream."""
        return len(self.stream)

    @property
    def done(self) -> bool:
        """True once the last segment is committed."""
        return self.segment_index >= self.n_segments - 1

    def segment(self, t: int) -> Segment:
        """Segment ``t`` of the stream."""
        return self.stream.segment(t)

    def budget_params(self, segment: Segment) -> int:
        """The parameter budget on ``segment``."""
        return self.budget.params(segment.n_users, segment.n_items)

    def evaluator(self, segment: Segment) -> Evaluator:
        """The (cached) evaluator of ``segment``."""
        if segment.index not in self._evaluators:
            self._evaluators[segment.index] = Evaluator(segment, device=self.config.device)
        return self._evaluators[segment.index]

    def check_budget(self) -> None:
        """Raise ``ValueError`` if the stream has fewer than 2 segments (nothing to search and
        commit), or if some segment's entities do not fit the budget at ``min_size``."""
        n = self.n_segments
        if n < 2:
            raise ValueError(
                f"the stream has {n} segment; the search needs at least 2 "
                "(segment 0 is trained with uniform sizes, later ones are searched and committed)"
            )
        min_size = self.config.min_size
        for t in range(n):
            n_users, n_items = self.stream.entity_counts(t)
            need = (n_users + n_items) * min_size
            have = self.budget.params(n_users, n_items)
            if have < need:
                raise ValueError(
                    f"budget {self.budget} allows {have} parameters on segment {t}, but its "
                    f"{n_users} users and {n_items} items need at least {need} at "
                    f"min_size={min_size}"
                )

    def sizes(
        self, decision: SizeDecision | None, segment: Segment, *, trial: bool = False
    ) -> SizeAssignment:
        """Sizes of ``segment``'s entities for ``decision`` under the budget.

        With ``trial=True`` and ``trial_sizing="paper"``, SCALL's sizer makes the authors'
        uncorrected trial sizes (baseline sizers always spend the budget as they define it).

        Raises:
            ValueError: If the sizer (a user's, say) returns sizes of the wrong length, outside
                ``[min_size, d_max]``, or over the budget.
        """
        uncorrected = trial and self.config.trial_sizing == "paper"
        uncorrected = uncorrected and isinstance(self.sizer, DistributionSizer)
        extra = {"exact": False} if uncorrected else {}
        budget, d_max, min_size = (
            self.budget_params(segment),
            self.config.d_max,
            self.config.min_size,
        )
        sizes = self.sizer.sizes(
            decision,
            segment.user_freq,
            segment.item_freq,
            budget,
            d_max=d_max,
            min_size=min_size,
            **extra,
        )
        source = f"the sizer {type(self.sizer).__name__}"
        if not isinstance(sizes, SizeAssignment) or sizes.budget_params != budget:
            raise ValueError(
                f"{source} must return a SizeAssignment for the budget of {budget} parameters"
            )
        sizes.check(segment.n_users, segment.n_items, d_max=d_max, min_size=min_size, source=source)
        return sizes

    def unclipped_sizes(
        self, decision: SizeDecision | None, trial: TrialResult
    ) -> tuple[np.ndarray, np.ndarray]:
        """The real sizes a trial's decision asked for before clipping (SCALL's sizer), or the
        sizes it got (a baseline sizer, which has no such notion)."""
        if not isinstance(self.sizer, DistributionSizer):
            return trial.sizes.user_sizes, trial.sizes.item_sizes
        segment = self.segment(trial.segment)
        return self.sizer.unclipped(
            decision,
            segment.n_users,
            segment.n_items,
            trial.sizes.budget_params,
            min_size=self.config.min_size,
        )

    def new_model(self, segment: Segment, sizes: SizeAssignment, seed: int) -> Recommender:
        """A freshly initialised base model for ``segment`` with ``sizes``."""
        return make_model(
            self.config.base_model,
            segment,
            sizes.user_sizes,
            sizes.item_sizes,
            d_max=self.config.d_max,
            seed=seed,
            device=self.config.device,
        )

    # -------------------------------------------------------------- protocol
    def start(self, seed: int) -> dict[str, Any]:
        """Commit ``D_0``: uniform sizes trained to convergence (from the cache when present).

        Returns:
            Segment 0's record (also the first entry of :attr:`committed`).
        """
        self.check_budget()
        segment = self.segment(0)
        sizes = UniformSizer().sizes(
            None,
            segment.user_freq,
            segment.item_freq,
            self.budget_params(segment),
            d_max=self.config.d_max,
            min_size=self.config.min_size,
        )
        model = self.new_model(segment, sizes, seed)
        settings = self._segment0_settings(seed)
        cached = self._segment0.get(seed) or self._model_cache.load(settings, self.config.device)
        self.last_convergence = None
        if cached is None:
            with _on_segment(0):
                result = train_to_convergence(
                    model,
                    segment,
                    self.config.train_config,
                    seed=seed,
                    evaluator=self.evaluator(segment),
                )
            self.last_convergence = result
            record = self._record(segment, result, sizes, None, 0)
            state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            self._model_cache.save(settings, state, record)
            cached = (state, record)
        self._segment0[seed] = cached
        state, record = cached
        model.load_state_dict(state)
        self._install(model, sizes, record, first=True)
        return dict(record)

    def trial(self, decision: SizeDecision | None, seed: int) -> TrialResult:
        """Train a fresh model with the decision's sizes on the segment being searched.

        Raises:
            RuntimeError: Before :meth:`start`.
            DivergenceError: Training produced a non-finite loss.
        """
        self._require_started()
        segment = self.segment(self.segment_index)
        sizes = self.sizes(decision, segment, trial=True)
        model = self.new_model(segment, sizes, seed)
        with _on_segment(segment.index):
            train_batches(
                model, segment, self.config.trial_batches, self.config.train_config, seed=seed
            )
        return TrialResult(segment.index, sizes, self.evaluator(segment).evaluate(model), model)

    def commit(
        self,
        decision: SizeDecision | None,
        model_seed: int,
        train_seed: int,
        *,
        action: Any = None,
        trials: int = 0,
    ) -> dict[str, Any]:
        """Commit the next segment: its sizes, a warm start, training to convergence.

        Args:
            decision: The size decision for the next segment (``None`` for baseline sizers).
            model_seed: Seed of the new entities' initial values.
            train_seed: Seed of the training batches.
            action: What to record as the record's ``action`` (e.g. the env's raw action).
            trials: Search trials the previous segment got (recorded as ``trials``).

        Returns:
            The committed segment's record (also appended to :attr:`committed`).

        Raises:
            RuntimeError: Before :meth:`start`, when every segment is committed, or when
                training diverges.
        """
        self._require_started()
        if self.done:
            raise RuntimeError("every segment is already committed; reset()")
        segment = self.segment(self.segment_index + 1)
        sizes = self.sizes(decision, segment)
        model = self.new_model(segment, sizes, model_seed)
        model.warm_start(self.model)
        with _on_segment(segment.index):
            result = train_to_convergence(
                model,
                segment,
                self.config.train_config,
                seed=train_seed,
                evaluator=self.evaluator(segment),
            )
        self.last_convergence = result
        self._evaluators.pop(self.segment_index, None)  # the searched segment is done with
        record = self._record(segment, result, sizes, action, trials)
        self._install(model, sizes, record, first=False)
        return dict(record)

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The committed state (segment, weights, sizes, reference, records), for a checkpoint.

        :meth:`load_state_dict` restores it; caches (stream, evaluators, segment-0 models) are
        not part of it, they are rebuilt on use.

        Raises:
            RuntimeError: Before :meth:`start`.
        """
        self._require_started()
        sizes = self.committed_sizes
        return {
            "segment_index": self.segment_index,
            "reference": self.reference,
            "committed": copy.deepcopy(self.committed),
            "user_sizes": np.array(sizes.user_sizes),
            "item_sizes": np.array(sizes.item_sizes),
            "budget_params": sizes.budget_params,
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`: the same committed model, sizes and records."""
        segment = self.segment(state["segment_index"])
        sizes = SizeAssignment.build(
            state["user_sizes"], state["item_sizes"], state["budget_params"]
        )
        model = self.new_model(segment, sizes, seed=0)  # every weight is overwritten next
        model.load_state_dict(state["model"])
        self.model, self.committed_sizes = model, sizes
        self.segment_index, self.reference = state["segment_index"], state["reference"]
        self.committed = copy.deepcopy(state["committed"])
        self.last_convergence = None

    # ------------------------------------------------------------- internals
    def _install(
        self, model: Recommender, sizes: SizeAssignment, record: dict[str, Any], first: bool
    ) -> None:
        self.model = model
        self.segment_index = record["segment"]
        self.reference = record["reference_fitness"]
        self.committed_sizes = sizes
        self.committed = [record] if first else [*self.committed, record]

    def _require_started(self) -> None:
        if self.model is None:
            raise RuntimeError("call reset() (SearchCore.start) first")

    def _record(
        self,
        segment: Segment,
        result: ConvergenceResult,
        sizes: SizeAssignment,
        action: Any,
        trials: int,
    ) -> dict[str, Any]:
        return {
            "segment": segment.index,
            **{k: float(v) for k, v in result.metrics.items()},
            # the fitness after the first chunk is what trials are compared with
            "reference_fitness": float(result.fitness[0]),
            "params_used": int(sizes.params_used),
            "budget_params": self.budget_params(segment),
            "chunks": int(result.chunks_run),
            "best_chunk": int(result.best_chunk),
            "converged": bool(result.converged),
            "trials": int(trials),
            "action": None if action is None else [float(a) for a in np.asarray(action)],
        }

    def _segment0_settings(self, seed: int) -> dict[str, Any]:
        cfg = self.config
        return {
            "version": SEGMENT0_CACHE_VERSION,
            "stream": self.stream.config.cache_key(self.stream.fingerprint),
            "train": asdict(cfg.train_config),
            "base_model": cfg.base_model,
            "d_max": cfg.d_max,
            "min_size": cfg.min_size,
            "budget": [cfg.budget_type, float(cfg.budget)],
            "device": cfg.device.type,
            "seed": seed,
        }


@contextlib.contextmanager
def _on_segment(index: int) -> Iterator[None]:
    """Name the segment in a divergence error (raised before anything is cached or reported)."""
    try:
        yield
    except DivergenceError as exc:
        raise DivergenceError(f"segment {index}: {exc}") from exc
