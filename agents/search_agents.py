"""Black-box search agents: they propose each segment's trials and commit the best one found.

``random-search`` (uniform decisions), ``optuna`` (TPE), ``cmaes`` (CMA-ES through optuna's
``CmaEsSampler``) and ``bandit`` (UCB over a grid of decisions) search instead of learning a
policy. Each is a :class:`~agents.baselines.Baseline`, so the harness, the YAML files and the
command lines treat them as they treat the baselines:

* ``predict(obs)`` proposes the next trial. Its outcome reaches the agent through a wrapper that
  :class:`SearchAgent` puts around its env, so ``learn`` is the baselines' own loop.
* ``predict(obs, deterministic=True)`` is the best decision found so far on the segment being
  searched; before its first result, the incumbent (the best decision of the previous segment,
  at first the middle of every range). The harness attaches it as the commit policy, so the
  adaptive stopping rule ends a segment's search once the best-so-far ``ratio`` has settled.
* The env commits the segment's best-rewarded trial (``commit="best"``, :data:`ENV_KWARGS`,
  which :func:`agents.factory.env_overrides` applies): the commit policy is called inside the
  env's step, before the agent can know that step's reward, so only the env knows the best trial
  including the last one. Ties go to the earlier trial, in both.

The searches of ``random-search``, ``optuna`` and ``cmaes`` start with the incumbent (``optuna``:
the previous segment's best few), so a commit never scored lower on its searched segment than
the previous decision; the bandit follows UCB alone.
Saved agents (:meth:`SearchAgent.save`) keep the incumbents, the trials of an unfinished segment
and the bandit's statistics; :meth:`SearchAgent.load` (what :func:`agents.factory.load_agent`
uses) restores them. Optuna's studies and the random generators start afresh after loading.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any, ClassVar, SupportsFloat

import gymnasium as gym
import numpy as np
import optuna
from optuna.distributions import FloatDistribution

from agents.baselines import Baseline

ENV_KWARGS: dict[str, Any] = {"commit": "best"}
"""Environment keywords every search agent needs: the env commits the best-rewarded trial."""
DECISION_NAMES = ("ratio", "alpha_user", "alpha_item")
"""The action's coordinates, in order (optuna's parameter names)."""


class _Feedback(gym.Wrapper):
    """Hands the action, reward and info of every step to the agent that proposed the action."""

    def __init__(self, env: gym.Env, agent: SearchAgent) -> None:
        super().__init__(env)
        self._agent = agent

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        if "commit" in info:  # a new pass (segment 0 committed), not an episode picked up again
            self._agent.start_pass()
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._agent.observe(np.asarray(action, dtype=np.float32), float(reward), info)
        return obs, reward, terminated, truncated, info


class SearchAgent(Baseline):
    """A search over decisions, one segment at a time; subclasses implement :meth:`action`.

    Attributes:
        elite: The best distinct decisions of the last searched segment, best first (at first
            the middle of the action space); ``elite[0]`` is the incumbent.
        segment_trials: ``(reward, action)`` of each trial of the segment being searched.
    """

    elite_size: int = 1

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, **params: Any) -> None:
        super().__init__(env, seed, **params)
        if env is not None:
            self.env = _Feedback(env, self)
        self._rng = np.random.default_rng(seed)
        middle = (self.action_space.low + self.action_space.high) / 2
        self.elite: list[np.ndarray] = [middle.astype(np.float32)]
        self.segment_trials: list[tuple[float, np.ndarray]] = []

    def best_action(self) -> np.ndarray:
        """The best-rewarded trial of the segment so far (the first on ties), else the incumbent."""
        if self.segment_trials:
            return max(self.segment_trials, key=lambda trial: trial[0])[1].copy()
        return self.elite[0].copy()

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """The next trial's action, or with ``deterministic`` the best one found (see module)."""
        if not deterministic:
            return super().predict(observation, state, episode_start)
        best = self.best_action()
        batched = np.asarray(observation).ndim == 2
        return (np.tile(best, (len(observation), 1)) if batched else best), None

    def start_pass(self) -> None:
        """Forget the unfinished segment: a new pass over the stream starts."""
        self.segment_trials = []

    def observe(self, action: np.ndarray, reward: float, info: dict[str, Any]) -> None:
        """Take in one trial's outcome; a commit in ``info`` ends the segment's search."""
        self.segment_trials.append((reward, action.copy()))
        self._learn_trial(action, reward)
        if "commit" in info:
            ranked = sorted(self.segment_trials, key=lambda trial: -trial[0])  # stable: ties
            distinct = {decision.tobytes(): decision for _, decision in ranked}
            self.elite = list(distinct.values())[: self.elite_size]
            self.segment_trials = []
            self._segment_searched()

    def _learn_trial(self, action: np.ndarray, reward: float) -> None:
        """Subclass hook: one trial's outcome."""

    def _segment_searched(self) -> None:
        """Subclass hook: the env committed the segment (``elite`` is updated)."""

    # ------------------------------------------------------------------ persistence
    def _payload(self) -> dict[str, Any]:
        """The name, seed and parameters (as baselines save them) and the search's state."""
        return {**super()._payload(), "state": self._state()}

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None) -> SearchAgent:
        """Read a search agent written by :meth:`save`, its state included.

        Raises:
            ValueError: The file holds a baseline that is no search agent, or a damaged state.
        """
        agent = Baseline.load(path, env=env)
        if not isinstance(agent, SearchAgent):
            raise ValueError(f"{path} holds the {agent.name!r} baseline, not a search agent")
        state = json.loads(Path(path).read_text()).get("state") or {}
        try:
            agent._restore(state)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path} holds a damaged search state ({exc})") from exc
        return agent

    def _state(self) -> dict[str, Any]:
        return {
            "elite": [action.tolist() for action in self.elite],
            "segment_trials": [[reward, action.tolist()] for reward, action in self.segment_trials],
        }

    def _restore(self, state: dict[str, Any]) -> None:
        if "elite" in state:
            self.elite = [self._as_action(action) for action in state["elite"]]
        self.segment_trials = [
            (float(reward), self._as_action(action)) for reward, action in state["segment_trials"]
        ]

    def _as_action(self, values: Any) -> np.ndarray:
        action = np.asarray(values, dtype=np.float32)
        if action.shape != self.action_space.shape:
            raise ValueError(f"an action of shape {action.shape}, not {self.action_space.shape}")
        return action


class RandomSearch(SearchAgent):
    """The incumbent first, then uniformly random decisions from a seeded generator."""

    name = "random-search"

    def __init__(self, env: gym.Env | None = None, seed: int | None = None) -> None:
        super().__init__(env, seed)

    def action(self, observation: np.ndarray) -> np.ndarray:
        if not self.segment_trials:
            return self.elite[0].copy()
        low, high = self.action_space.low, self.action_space.high
        return self._rng.uniform(low, high).astype(np.float32)


class _OptunaSearch(SearchAgent):
    """A search whose proposals come from an optuna study over the three coordinates."""

    #: Whether a segment's search starts a new study (TPE) or goes on with the last (CMA-ES).
    restart_each_segment: ClassVar[bool] = True

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, **params: Any) -> None:
        super().__init__(env, seed, **params)
        low, high = self.action_space.low, self.action_space.high
        self._space = {
            name: FloatDistribution(float(lo), float(hi))
            for name, lo, hi in zip(DECISION_NAMES, low, high, strict=True)
        }
        self._study: optuna.Study | None = None
        self._asked: dict[bytes, optuna.Trial] = {}
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # the monitor records every trial

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    def _enqueue_elite(self) -> None:
        assert self._study is not None
        for action in self.elite:
            self._study.enqueue_trial(dict(zip(DECISION_NAMES, map(float, action), strict=True)))

    def action(self, observation: np.ndarray) -> np.ndarray:
        if self._study is None:
            sampler = self._sampler(int(self._rng.integers(2**31 - 1)))
            self._study = optuna.create_study(direction="maximize", sampler=sampler)
            self._enqueue_elite()
        trial = self._study.ask(self._space)
        action = np.array([trial.params[name] for name in DECISION_NAMES], dtype=np.float32)
        self._asked[action.tobytes()] = trial
        return action

    def _learn_trial(self, action: np.ndarray, reward: float) -> None:
        trial = self._asked.pop(action.tobytes(), None)
        if trial is not None and self._study is not None:
            self._study.tell(trial, reward)

    def _segment_searched(self) -> None:
        self._asked = {}
        if self.restart_each_segment or self._study is None:
            self._study = None  # the next proposal starts a study with the elite enqueued
        else:
            self._enqueue_elite()

    def start_pass(self) -> None:
        super().start_pass()
        self._segment_searched()


class OptunaSearch(_OptunaSearch):
    """TPE (optuna's ``TPESampler``), a fresh study per segment seeded with the previous best.

    Args:
        n_startup_trials: Trials before TPE models the results (the enqueued ones count).
        warm_start: How many of the previous segment's best decisions each study tries first.
        multivariate: Model the three coordinates jointly (optuna's multivariate TPE).
    """

    name = "optuna"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int | None = None,
        n_startup_trials: int = 4,
        warm_start: int = 3,
        multivariate: bool = True,
    ) -> None:
        if not (isinstance(n_startup_trials, int) and n_startup_trials >= 0):
            raise ValueError(f"n_startup_trials must be an integer >= 0, got {n_startup_trials!r}")
        if not (isinstance(warm_start, int) and warm_start >= 1):
            raise ValueError(f"warm_start must be an integer >= 1, got {warm_start!r}")
        super().__init__(
            env,
            seed,
            n_startup_trials=n_startup_trials,
            warm_start=warm_start,
            multivariate=bool(multivariate),
        )
        self.elite_size = warm_start

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=self.params["n_startup_trials"],
            multivariate=self.params["multivariate"],
            seed=seed,
        )


class CmaEsSearch(_OptunaSearch):
    """CMA-ES (optuna's ``CmaEsSampler``): one search distribution over the whole stream.

    The distribution's mean and spread carry over from segment to segment (a generation may span
    two); each segment's search first re-tries the incumbent, which CMA-ES leaves out of its
    generations.

    Args:
        popsize: Trials per generation (``None``: CMA-ES's default, 7 for three coordinates).
    """

    name = "cmaes"
    restart_each_segment = False

    def __init__(
        self, env: gym.Env | None = None, seed: int | None = None, popsize: int | None = None
    ) -> None:
        if popsize is not None and not (isinstance(popsize, int) and popsize >= 4):
            # below 4, CMA-ES's recombination weights degenerate (a division by zero)
            raise ValueError(f"popsize must be an integer >= 4 or null, got {popsize!r}")
        super().__init__(env, seed, popsize=popsize)

    def _sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.CmaEsSampler(
            popsize=self.params["popsize"],
            n_startup_trials=0,
            seed=seed,
            warn_independent_sampling=False,  # only trials asked before any result is in
        )


class UCBBandit(SearchAgent):
    """UCB1 over a grid of decisions, its statistics carried from segment to segment.

    Arms are the ``levels ** 3`` decisions at the centres of a regular grid over the action
    space; arms never played go first, nearest the middle first, then the arm with the highest
    ``mean + exploration * sqrt(ln(pulls) / arm pulls)``. After each segment the statistics are
    multiplied by ``discount``, so older segments weigh less (1: never forget).

    Args:
        levels: Grid points per coordinate (odd counts include the middle).
        exploration: Weight of the exploration bonus (rewards are on the env's 0-10 scale).
        discount: Factor in ``(0, 1]`` applied to the statistics after each segment.
    """

    name = "bandit"

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int | None = None,
        levels: int = 3,
        exploration: float = 2.0,
        discount: float = 1.0,
    ) -> None:
        if not (isinstance(levels, int) and levels >= 1):
            raise ValueError(f"levels must be an integer >= 1, got {levels!r}")
        if not (isinstance(exploration, int | float) and exploration >= 0):
            raise ValueError(f"exploration must be a number >= 0, got {exploration!r}")
        if not (isinstance(discount, int | float) and 0 < discount <= 1):
            raise ValueError(f"discount must be a number in (0, 1], got {discount!r}")
        super().__init__(env, seed, levels=levels, exploration=exploration, discount=discount)
        low, high = self.action_space.low, self.action_space.high
        centres = (np.arange(levels) + 0.5) / levels  # of the grid's cells, in [0, 1]
        points = low[:, None] + (high - low)[:, None] * centres
        arms = np.array(list(itertools.product(*points)), dtype=np.float32)
        distance = np.linalg.norm(arms - self.elite[0], axis=1)
        self.arms = arms[np.argsort(distance, kind="stable")]
        self.counts = np.zeros(len(self.arms))
        self.sums = np.zeros(len(self.arms))

    def action(self, observation: np.ndarray) -> np.ndarray:
        unplayed = np.flatnonzero(self.counts == 0)
        if unplayed.size:
            return self.arms[unplayed[0]].copy()
        pulls = max(float(self.counts.sum()), 1.0)  # discounting can bring the total below 1
        bonus = self.params["exploration"] * np.sqrt(np.log(pulls) / self.counts)
        return self.arms[int(np.argmax(self.sums / self.counts + bonus))].copy()

    def _learn_trial(self, action: np.ndarray, reward: float) -> None:
        arm = np.flatnonzero((self.arms == action).all(axis=1))
        if arm.size:  # an action from elsewhere (not an arm) only counts for the commit
            self.counts[arm[0]] += 1
            self.sums[arm[0]] += reward

    def _segment_searched(self) -> None:
        self.counts *= self.params["discount"]
        self.sums *= self.params["discount"]

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "counts": self.counts.tolist(), "sums": self.sums.tolist()}

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore(state)
        counts, sums = (np.asarray(state[key], dtype=float) for key in ("counts", "sums"))
        if counts.shape != self.counts.shape or sums.shape != self.sums.shape:
            raise ValueError(f"statistics of {len(counts)} arms for a grid of {len(self.arms)}")
        self.counts, self.sums = counts, sums


SEARCH_AGENTS: dict[str, type[SearchAgent]] = {
    cls.name: cls for cls in (RandomSearch, OptunaSearch, CmaEsSearch, UCBBandit)
}
"""Search agents by name."""
