"""The SCALL embedding-size search as a Gymnasium environment."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from scall_env.config import CommitPolicy, EnvConfig
from scall_env.search import SearchCore
from scall_env.segment import Segment
from scall_env.sizing import SizeAssignment, SizeDecision
from scall_env.stream import Stream

REWARD_SCALE = 10.0
"""Rewards are ``REWARD_SCALE * (fitness / reference - low) / (high - low)``."""
N_EXTRA_FEATURES = 6
"""Observation entries besides the pooled frequencies and mean embeddings."""


def pooled_frequencies(freq: np.ndarray, n_groups: int) -> np.ndarray:
    """Sorted (descending), min-max normalised frequencies mean-pooled into ``n_groups`` groups.

    Group ``g`` averages ranks ``[g*n // n_groups, (g+1)*n // n_groups)``; when there are fewer
    entities than groups, an empty group repeats the entity at its start, so the curve keeps its
    shape whatever ``n``. A constant frequency vector normalises to zeros. Returns ``float32``
    values in ``[0, 1]``, non-increasing.
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
    ``search_steps`` trials the stream advances: sizes for the next segment are committed (see
    ``commit``), the model is warm-started and trained to convergence, and that segment's
    Recall/NDCG are recorded. This is SCALL's protocol (Qu et al., CIKM 2024); the protocol
    itself lives in :class:`scall_env.search.SearchCore`, this class is its Gymnasium face.

    ## Action Space
    ``Box(-1, 1, (3,), float32)``, mapped affinely onto ``[1e-6, 1 - 1e-6]`` (inside ``(0, 1)``)
    as a :class:`scall_env.sizing.SizeDecision`:

    | index | meaning |
    |---|---|
    | 0 | ``ratio``: share of the budget (above the minimum sizes) that goes to users |
    | 1 | ``alpha_user``: shape of the users' size distribution (0: most skewed, 1: flattest) |
    | 2 | ``alpha_item``: the same for items |

    With a baseline ``sizer`` (uniform, frequency) the action is accepted and ignored.
    A wrongly shaped, complex, non-finite or out-of-box action raises ``ValueError``; nothing is
    clipped.

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
    segment-0 model is cached in memory and on disk, keyed by every setting and the seed, and
    verified on load.

    ## Episode End
    The episode terminates when the last segment has been committed, after
    ``search_steps * (T - 1)`` steps. It is never truncated by the environment itself.

    ## Info
    Every step: ``segment``, ``trial``, ``params_used``, ``budget_params``, ``fitness``,
    ``recall@K`` / ``ndcg@K`` (K = 5, 10, 20) of the trial, ``reference_fitness``,
    ``user_share`` (effective), and ``{user,item}_size_{min,mean,max}``. On a step where the
    stream advanced, ``info["commit"]`` holds the committed segment's ``segment``, ``recall@K``,
    ``ndcg@K``, ``fitness``, ``params_used``, ``budget_params``, ``chunks`` and ``action``; when
    the commit policy chose the action, ``info["commit_observation"]`` is what it saw.
    :attr:`committed` keeps the commit dicts for the whole episode (segment 0 first).

    ## Arguments
    Every argument is a keyword of ``gym.make`` (validated by :class:`scall_env.config.EnvConfig`):

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
    * ``commit`` (``"auto"``): the committed action: ``"policy"`` (the commit policy on the next
      segment's observation: the paper's protocol), ``"best"`` (the best-rewarded trial, first on
      ties), ``"last"`` / ``"first"`` (the segment's last / first trial), ``"auto"`` (policy when
      one is set, else best).
    * ``commit_policy``: a callable observation -> action; :meth:`set_commit_policy` replaces it,
      also in subprocess vector envs (``env_method`` / ``call``), so it must be picklable there.

    Seeding: ``reset(seed=s)`` seeds every trial and the segment-0 training; the same seed gives
    the same observations and rewards on CPU. A reset without a seed (e.g. a vectorised env's
    automatic reset) starts from the same segment-0 model as the previous episode, while its
    trials draw new seeds.

    ## Version History
    * v0: initial version. Later additions with unchanged defaults: ``commit``.
    """

    metadata = {"render_modes": []}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        unknown = sorted(set(kwargs) - set(EnvConfig.keywords()))
        if unknown:
            raise TypeError(
                f"unknown ScallEnv arguments {unknown}; allowed: {', '.join(EnvConfig.keywords())}"
            )
        self.config = EnvConfig(**kwargs)
        self.core = SearchCore(self.config)
        self.commit_policy: CommitPolicy | None = self.config.commit_policy
        cfg = self.config
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        dim = 2 * cfg.n_groups + 2 * cfg.d_max + N_EXTRA_FEATURES
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(dim,), dtype=np.float32)
        self._segment0_seed: int | None = None
        self._trial = 0
        self._last_reward = 0.0
        self._last_sizes: SizeAssignment | None = None
        self._trial_log: list[tuple[float, np.ndarray]] = []

    # ----------------------------------------------------------- read-only views
    @property
    def stream(self) -> Stream:
        """The stream (built or loaded from the cache on first use)."""
        return self.core.stream

    @property
    def search_steps(self) -> int:
        """Trials per segment."""
        return self.config.search_steps

    @property
    def committed(self) -> list[dict[str, Any]]:
        """Records of the committed segments of this episode (segment 0 first)."""
        return self.core.committed

    @property
    def committed_sizes(self) -> SizeAssignment | None:
        """Sizes of the last committed segment (``None`` before :meth:`reset`)."""
        return self.core.committed_sizes

    @property
    def segment_index(self) -> int:
        """Index of the segment being searched (the last committed one)."""
        return self.core.segment_index

    def set_commit_policy(self, policy: CommitPolicy | None) -> None:
        """Replace the commit policy (reachable through vector envs' ``env_method``/``call``)."""
        if policy is not None and not callable(policy):
            raise ValueError(
                f"commit_policy must be a callable observation -> action, got {type(policy)}"
            )
        self.commit_policy = policy

    def policy_due(self) -> bool:
        """True when the next :meth:`step` will consult the commit policy (it commits)."""
        return self._trial == self.search_steps - 1 and self._commit_mode() == "policy"

    # --------------------------------------------------------------- helpers
    def _next_seed(self) -> int:
        return int(self.np_random.integers(2**31 - 1))

    def _observation(self, segment: Segment, trial: int, last_reward: float) -> np.ndarray:
        cfg = self.config
        user_mean, item_mean = np.zeros((2, cfg.d_max), dtype=np.float32)
        with torch.no_grad():
            user_raw, item_raw = self.core.model.raw_embeddings()
            user_mean[: user_raw.shape[1]] = user_raw.mean(dim=0).cpu().numpy()
            item_mean[: item_raw.shape[1]] = item_raw.mean(dim=0).cpu().numpy()
        spread = np.zeros(2, dtype=np.float32)
        if self._last_sizes is not None:
            spread[:] = [np.ptp(self._last_sizes.user_sizes), np.ptp(self._last_sizes.item_sizes)]
            spread /= cfg.d_max
        n_entities = segment.n_users + segment.n_items
        progress = [trial / cfg.search_steps, segment.index / max(self.core.n_segments - 1, 1)]
        return np.concatenate(
            [
                pooled_frequencies(segment.user_freq, cfg.n_groups),
                pooled_frequencies(segment.item_freq, cfg.n_groups),
                [np.tanh(last_reward / REWARD_SCALE), segment.n_users / n_entities],
                np.tanh(user_mean),
                np.tanh(item_mean),
                spread,
                progress,
            ]
        ).astype(np.float32)

    def _commit_mode(self) -> str:
        if self.config.commit == "auto":
            return "policy" if self.commit_policy is not None else "best"
        return self.config.commit

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a pass over the stream: ``D_0`` is trained with uniform sizes (cached).

        Returns:
            The observation of segment 0 and ``{"commit": <segment-0 record>}``.
        """
        super().reset(seed=seed)
        if seed is not None or self._segment0_seed is None:
            self._segment0_seed = self._next_seed()
        record = self.core.start(self._segment0_seed)
        self._trial, self._last_reward, self._trial_log = 0, 0.0, []
        self._last_sizes = self.core.committed_sizes
        return self._observation(self.core.segment(0), 0, 0.0), {"commit": record}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one search trial on the current segment; advance after ``search_steps`` trials.

        Raises:
            RuntimeError: Called before :meth:`reset` or after the episode terminated.
            ValueError: A malformed action.
        """
        if self.core.model is None:
            raise RuntimeError("call reset() before step()")
        if self.core.done:
            raise RuntimeError("the episode has terminated (every segment is committed); reset()")
        decision = SizeDecision.from_action(action)
        result = self.core.trial(decision, self._next_seed())
        low, high = self.config.reward_bounds
        reference = self.core.reference
        ratio = result.fitness / reference if reference > 0 else 0.0
        reward = REWARD_SCALE * (ratio - low) / (high - low)
        self._last_reward, self._last_sizes = reward, result.sizes
        self._trial += 1
        self._trial_log.append((reward, np.asarray(action, dtype=np.float32).copy()))
        sizes = result.sizes
        info: dict[str, Any] = {
            "segment": result.segment,
            "trial": self._trial - 1,
            **{k: float(v) for k, v in result.metrics.items()},
            "reference_fitness": reference,
            "params_used": sizes.params_used,
            "budget_params": sizes.budget_params,
            "user_share": sizes.user_share,
            **_size_stats("user", sizes.user_sizes),
            **_size_stats("item", sizes.item_sizes),
        }
        if self._trial >= self.search_steps:
            info.update(self._advance(None))
        segment = self.core.segment(self.core.segment_index)
        obs = self._observation(segment, self._trial, self._last_reward)
        return obs, float(reward), self.core.done, False, info

    def advance(self, action: np.ndarray | None = None) -> dict[str, Any]:
        """Commit the next segment now, with ``action`` or else the one ``commit`` picks.

        Returns:
            The committed segment's record (also appended to :attr:`committed`).

        Raises:
            RuntimeError: Before :meth:`reset`, or when every segment is already committed.
        """
        if self.core.model is None:
            raise RuntimeError("call reset() before advance()")
        return self._advance(action)["commit"]

    def _advance(self, action: np.ndarray | None) -> dict[str, Any]:
        if self.core.done:
            raise RuntimeError("every segment is already committed; reset()")
        extra: dict[str, Any] = {}
        if action is None:
            action, extra = self._commit_action()
        decision = SizeDecision.from_action(action)
        record = self.core.commit(decision, self._next_seed(), self._next_seed(), action=action)
        self._trial, self._last_reward, self._trial_log = 0, 0.0, []
        self._last_sizes = self.core.committed_sizes
        return {"commit": record, **extra}

    def _commit_action(self) -> tuple[np.ndarray, dict[str, Any]]:
        mode = self._commit_mode()
        if mode == "policy":
            if self.commit_policy is None:
                raise RuntimeError(
                    "commit='policy' needs a commit policy: gym.make(..., commit_policy=f) or "
                    "env.unwrapped.set_commit_policy(f) (env_method/call in vector envs)"
                )
            # The policy sees the next segment as the search on it will start: no trials yet.
            obs = self._observation(self.core.segment(self.core.segment_index + 1), 0, 0.0)
            return np.asarray(self.commit_policy(obs)), {"commit_observation": obs}
        if not self._trial_log:
            return np.zeros(3, dtype=np.float32), {}
        if mode == "best":
            return max(self._trial_log, key=lambda entry: entry[0])[1], {}
        return self._trial_log[-1 if mode == "last" else 0][1], {}


def _size_stats(prefix: str, sizes: np.ndarray) -> dict[str, int | float]:
    return {
        f"{prefix}_size_min": int(sizes.min()),
        f"{prefix}_size_mean": float(sizes.mean()),
        f"{prefix}_size_max": int(sizes.max()),
    }
