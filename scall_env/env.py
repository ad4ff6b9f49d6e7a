"""The SCALL embedding-size search as a Gymnasium environment."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from scall_env.config import CommitPolicy, EnvConfig
from scall_env.observation import (
    REWARD_SCALE,
    SearchState,
    mean_embeddings,
    observation_space,
    observe,
    pooled_frequencies,
    spread,
)
from scall_env.search import SearchCore, SegmentSearch, TrialResult, constant_policy_trials
from scall_env.segment import Segment
from scall_env.sizing import SizeAssignment, SizeDecision
from scall_env.stream import Stream

__all__ = ["ScallEnv", "pooled_frequencies"]


class ScallEnv(gym.Env[np.ndarray, np.ndarray]):
    """Embedding-size search under a parameter budget over a recommendation stream.

    ## Description
    A stream of interactions is cut into segments ``D_0..D_{T-1}``; a recommender (LightGCN or
    MF) gives entity ``i`` the first ``d_i`` of ``d_max`` columns, within a parameter budget. On
    each segment the agent's action shapes a size distribution; sizes drawn from it are handed
    out by frequency rank, a fresh model trains briefly with them, and its quality is the reward.
    When the search on a segment ends (``search``), the next segment's sizes are committed
    (``commit``), the model is warm-started and trained to convergence, and its Recall/NDCG are
    recorded: SCALL's protocol (Qu et al., CIKM 2024), run by
    :class:`scall_env.search.SearchCore`; this class is its Gymnasium face.

    ## Action Space
    ``Box(-1, 1, (3,), float32)``, mapped affinely onto ``[1e-6, 1 - 1e-6]`` as a
    :class:`scall_env.sizing.SizeDecision`: ``ratio`` (users' share of the budget, see
    ``ratio_base``), ``alpha_user`` and ``alpha_item`` (shape of each side's size distribution,
    0: most skewed, 1: flattest). With a baseline ``sizer`` the action is accepted and ignored.
    A wrongly shaped, complex, non-finite or out-of-box action raises ``ValueError``; nothing is
    clipped.

    ## Observation Space
    ``observation="paper"``: the authors' state, ``Box(-inf, inf, (2 * n_groups + 2 * d_max +
    4,))`` (1028 values): pooled user and item frequencies, the raw fitness ratio of the last
    trial, the user share, the raw mean embeddings of the last trial model, the spread of the
    unclipped sizes. ``observation="bounded"``: ours, ``Box(-1, 1, (2 * n_groups + 2 * d_max +
    6,))``. :mod:`scall_env.observation` documents both layouts entry by entry.

    ## Rewards
    ``10 * (fitness / reference - low) / (high - low)``, ``(low, high) = reward_bounds``: fitness
    is the trial model's mean of Recall@20 and NDCG@20 on the segment's test set, reference the
    committed, warm-started model's after its first ``trial_batches`` batches on the segment.

    ## Starting State
    ``reset`` loads the stream, checks every segment's budget and trains ``D_0`` with uniform
    sizes to convergence (cached, keyed by every setting and the seed); the search starts on it.

    ## Episode End
    Terminated once the last segment is committed (:meth:`max_episode_steps` bounds the steps);
    never truncated.

    ## Info
    Every step: the trial's ``segment``, ``trial``, ``fitness``, ``recall@K`` / ``ndcg@K`` (K = 5,
    10, 20), ``reference_fitness``, ``params_used``, ``budget_params``, ``user_share``,
    ``{user,item}_size_{min,mean,max}``; under ``search="adaptive"`` also ``policy_ratio`` (what
    the stopping rule saw). When the stream advanced, ``info["commit"]`` is the committed
    segment's record (metrics, parameters, ``chunks``, ``best_chunk``, ``trials`` the searched
    segment got, ``action``) and, if the policy chose, ``info["commit_observation"]`` what it saw.
    :attr:`committed` keeps them.

    ## Arguments
    Every argument is a keyword of ``gym.make`` (validated by :class:`scall_env.config.EnvConfig`);
    defaults follow the authors, our alternatives are options:

    * ``dataset`` (``"ml-1m"``), ``data_dir``, ``dataset_options``: the source; ``n_segments``
      (10), ``k_core`` (10), ``replay_ratio`` (0.2), ``segmentation`` (``"count"``),
      ``new_entity_threshold``, ``time_window``, ``stream_seed`` (0): the stream.
    * ``budget_type`` (``"c"``) and ``budget`` (32): mean size, or megabytes of float32.
    * ``distribution`` (``"powerlaw"``) and ``ratio_base`` (``"budget"``: users get ``ratio *
      budget``; ``"free"``: ``ratio`` of the budget above the minimum sizes): SCALL's sizer;
      ``sizer``: any :class:`scall_env.sizing.Sizer` instead.
    * ``trial_sizing`` (``"paper"``: uncorrected trial sizes that may leave budget unused;
      ``"exact"``: trials spend the budget exactly, as commits always do).
    * ``base_model`` (``"lightgcn"``; ``"mf"``), ``d_max`` (256), ``min_size`` (1).
    * ``observation`` (``"paper"``; ``"bounded"``) and ``n_groups`` (256 pooled groups).
    * ``search`` (``"adaptive"``: at least ``search_steps`` (11) trials, until the commit
      policy's ratio on the post-trial observation (else the action's) moved at most
      ``search_tolerance`` (0.01) over its last ``search_window`` (5) values, at most
      ``search_max_steps`` (60; ours, the authors have none); ``"fixed"``: ``search_steps``).
    * ``trial_batches`` (200): batches of a trial, and of a chunk when training to convergence.
    * ``batch_size`` (10,000), ``lr`` (0.03), ``l2_reg`` (1e-4), ``max_chunks`` (50): training.
    * ``flush_denormals`` (True): flush denormal floats to zero while training on CPU (ours: no
      slowdown once margins grow wide, the same weights but for ones next to zero; see
      :class:`scall_env.recsys.TrainConfig`). ``False`` keeps them, as torch does by default.
    * ``reward_bounds`` (``(0.9, 1.1)``).
    * ``device`` (``"auto"``: CUDA when available), ``cache_dir``, ``use_cache`` (True).
    * ``commit`` (``"auto"``): ``"policy"`` (the commit policy on the next segment's
      observation: the paper), ``"best"`` (the best-rewarded trial, first on ties), ``"last"`` /
      ``"first"`` (the segment's last / first trial), ``"auto"`` (policy if set, else best).
    * ``commit_policy``: a callable observation -> action; :meth:`set_commit_policy` replaces it,
      also in subprocess vector envs (``env_method`` / ``call``), so it must be picklable there.

    Seeding: ``reset(seed=s)`` seeds every trial and the segment-0 training (same seed, same run
    on CPU); an unseeded reset (a vector env's auto-reset) keeps the segment-0 model.

    ## Version History
    * v0: initial version. Since then (ids unchanged): ``commit``, ``flush_denormals``; the
      authors' protocol by default (adaptive search, uncorrected trial sizes, ``ratio`` of the
      whole budget, their state, evaluation set, zero warm-start columns, newer-first ties, ties
      accepted in convergence); the first release's choices as ``search="fixed"``,
      ``trial_sizing="exact"``, ``ratio_base="free"``, ``observation="bounded"``. The bounded
      layout's search progress counts trials over ``search_max_steps`` under adaptive search
      (before: over ``search_steps``, which left the space's ``[-1, 1]``).
    """

    metadata = {"render_modes": []}
    #: What :meth:`get_state` keeps besides the core: the generator, the search on the segment.
    _STATE = ("np_random", "_segment0_seed", "_last_ratio", "_view_means", "_view_spread",
              "_search")  # fmt: skip

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.config = cfg = EnvConfig.from_kwargs(kwargs)
        self.core = SearchCore(cfg)
        self.commit_policy: CommitPolicy | None = cfg.commit_policy
        self.action_space = spaces.Box(-1.0, 1.0, shape=(3,), dtype=np.float32)
        self.observation_space = observation_space(cfg.observation, cfg.n_groups, cfg.d_max)
        self._segment0_seed: int | None = None
        self._last_ratio = 0.5
        self._view_means = np.zeros((2, cfg.d_max), dtype=np.float32)
        self._view_spread = (0.0, 0.0)
        self._search = SegmentSearch()

    # ----------------------------------------------------------- read-only views
    @property
    def stream(self) -> Stream:
        """The stream (built or loaded from the cache on first use)."""
        return self.core.stream

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

    def max_episode_steps(self) -> int:
        """The most steps one pass can take (exactly this many with ``search="fixed"``)."""
        return self.config.max_segment_trials * (self.core.n_segments - 1)

    def set_commit_policy(self, policy: CommitPolicy | None) -> None:
        """Replace the commit policy (reachable through vector envs' ``env_method``/``call``)."""
        if policy is not None and not callable(policy):
            raise ValueError(
                f"commit_policy must be a callable observation -> action, got {type(policy)}"
            )
        self.commit_policy = policy

    def policy_due(self) -> bool:
        """True when the next :meth:`step` will consult the commit policy."""
        if self.commit_policy is None and self.config.commit != "policy":
            return False
        adaptive = self.config.search == "adaptive"
        return adaptive or (
            self._search.trials == self.config.search_steps - 1 and self._mode() == "policy"
        )

    # --------------------------------------------------------------- helpers
    def _next_seed(self) -> int:
        return int(self.np_random.integers(2**31 - 1))

    def _mode(self) -> str:
        if self.config.commit == "auto":
            return "policy" if self.commit_policy is not None else "best"
        return self.config.commit

    def _note_commit(self, first: bool) -> None:
        """Start a segment's search; update the observation's view after a reset or commit."""
        self._search = SegmentSearch()
        d_max = self.config.d_max
        if self.config.observation == "bounded":  # the committed model and sizes
            sizes = self.core.committed_sizes
            self._view_means = mean_embeddings(self.core.model, d_max)
            self._view_spread = spread(sizes.user_sizes, sizes.item_sizes, d_max)
        elif first:  # the paper's state keeps the last trial's view across commits
            self._view_means = mean_embeddings(self.core.model, d_max)
            self._view_spread = (0.0, 0.0)

    def _note_trial(self, decision: SizeDecision, result: TrialResult) -> None:
        """Update what the observation reports after a trial."""
        self._last_ratio = result.fitness / self.core.reference if self.core.reference > 0 else 0.0
        d_max = self.config.d_max
        if self.config.observation == "bounded":
            self._view_spread = spread(result.sizes.user_sizes, result.sizes.item_sizes, d_max)
        else:  # the authors': the trial model, and the sizes before clipping over d_max - 1
            self._view_means = mean_embeddings(result.model, d_max)
            users, items = self.core.unclipped_sizes(decision, result)
            self._view_spread = spread(users, items, max(d_max - 1, 1))

    def _observe(self, segment: Segment, fresh: bool = False) -> np.ndarray:
        """Observation of ``segment``; ``fresh``: as a search on it starts (no trial yet)."""
        state = SearchState(
            trial=0 if fresh else self._search.trials,
            last_reward=0.0 if fresh else self._search.last_reward,
            last_ratio=self._last_ratio,
            user_mean=self._view_means[0],
            item_mean=self._view_means[1],
            spread=self._view_spread,
            segment_fraction=segment.index / max(self.core.n_segments - 1, 1),
            max_trials=self.config.max_segment_trials,
        )
        return observe(self.config.observation, segment, state, self.config.n_groups)

    def _search_over(self, decision: SizeDecision, obs: np.ndarray) -> bool:
        """Whether the search on the current segment ends after this trial."""
        if self.config.search == "adaptive":  # the rule watches the policy's ratio
            ratio = decision.ratio
            if self.commit_policy is not None:
                ratio = SizeDecision.from_action(self.commit_policy(obs)).ratio
            self._search.policy_ratios.append(ratio)
        return self._search.over(self.config)

    # ------------------------------------------------------------- gym API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a pass over the stream: ``D_0`` is trained with uniform sizes (cached).

        ``options={"state": s}`` continues the episode of :meth:`get_state` instead (info ``{}``).

        Returns:
            The observation of segment 0 and ``{"commit": <segment-0 record>}``.
        """
        if options is not None and "state" in options:
            self._set_state(options["state"])
            return self._observe(self.core.segment(self.core.segment_index)), {}
        super().reset(seed=seed)
        if seed is not None or self._segment0_seed is None:
            self._segment0_seed = self._next_seed()
        record = self.core.start(self._segment0_seed)
        self._last_ratio = 0.5
        self._note_commit(first=True)
        return self._observe(self.core.segment(0)), {"commit": record}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Run one search trial on the current segment; advance when its search ends.

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
        self._note_trial(decision, result)
        self._search.add(reward, action)
        info = {
            **result.summary(),
            "trial": self._search.trials - 1,
            "reference_fitness": reference,
        }
        obs = self._observe(self.core.segment(result.segment))
        over = self._search_over(decision, obs)
        if self._search.policy_ratios:
            info["policy_ratio"] = self._search.policy_ratios[-1]
        if over:
            info.update(self._advance(None))
            obs = self._observe(self.core.segment(self.core.segment_index))
        return obs, float(reward), self.core.done, False, info

    def advance(self, action: np.ndarray | None = None, *, skip_search: bool = False) -> dict:
        """Commit the next segment now, with ``action`` or else the one ``commit`` picks.

        ``skip_search=True``: for an agent whose action never changes (a baseline), no search;
        the seeds of the :func:`~scall_env.search.constant_policy_trials` trials it would run are
        drawn and dropped, so the commit equals that of a run with them (``trials`` is 0 in it).
        Without ``action`` the policy's is used (also the best, first and last trial's then).

        Raises:
            RuntimeError: Before :meth:`reset`, when every segment is already committed, or
                ``skip_search`` once trials ran on the segment or with neither action nor policy.
        """
        if self.core.model is None:
            raise RuntimeError("call reset() before advance()")
        if skip_search:
            if self._search.trials or (action is None and self.commit_policy is None):
                raise RuntimeError(
                    f"skip_search needs an action or policy, no trials ({self._search.trials} ran)"
                )
            for _ in range(constant_policy_trials(self.config)):
                self._next_seed()  # keep the seeds of the commit aligned with a searching run
            if action is None:
                action = self._commit_action("policy")[0]
        return self._advance(action)["commit"]

    def get_state(self) -> dict[str, Any]:
        """Everything but the commit policy needed to continue this episode exactly, for
        ``reset(options={"state": ...})``: the core's state, the generator, the segment's search."""
        state = {name: copy.deepcopy(getattr(self, name)) for name in self._STATE}
        return {**state, "core": self.core.state_dict()}

    def _set_state(self, state: dict[str, Any]) -> None:
        self.core.load_state_dict(state["core"])
        for name in self._STATE:
            setattr(self, name, copy.deepcopy(state[name]))

    def _advance(self, action: np.ndarray | None) -> dict[str, Any]:
        if self.core.done:
            raise RuntimeError("every segment is already committed; reset()")
        extra: dict[str, Any] = {}
        if action is None:
            action, extra = self._commit_action()
        decision = SizeDecision.from_action(action)
        seeds = self._next_seed(), self._next_seed()  # the new entities', the training's
        record = self.core.commit(decision, *seeds, action=action, trials=self._search.trials)
        self._note_commit(first=False)
        return {"commit": record, **extra}

    def _commit_action(self, mode: str | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        mode = mode or self._mode()
        if mode == "policy":
            if self.commit_policy is None:
                raise RuntimeError(
                    "commit='policy' needs a commit policy: gym.make(..., commit_policy=f) or "
                    "env.unwrapped.set_commit_policy(f) (env_method/call in vector envs)"
                )
            # The policy sees the next segment as the search on it will start: no trials yet.
            obs = self._observe(self.core.segment(self.core.segment_index + 1), fresh=True)
            return np.asarray(self.commit_policy(obs)), {"commit_observation": obs}
        return self._search.action(mode), {}
