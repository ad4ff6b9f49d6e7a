"""Baselines with the same interface as an SB3 model: ``learn``, ``predict``, ``save``, ``load``.

They learn nothing. ``uniform`` and ``frequency`` decide sizes directly: they hand the environment
their :class:`~scall_env.sizing.Sizer` (:meth:`Baseline.sizer`), so the harness builds their
environment with ``sizer=...`` and no other special case; their action is ignored by that sizer.
``random`` draws seeded uniform actions, ``fixed`` always returns a given action.

None of the four uses the search's trials (:attr:`Baseline.commit_only`), so they can play
without them: ``learn(..., commit_only=True)`` commits every segment straight away. For
``uniform``, ``frequency`` and ``fixed`` the committed segments are exactly those of a run with
trials (the env skips the trials' seeds, see :meth:`scall_env.env.ScallEnv.advance`). ``random``
is a random policy: its trials never inform its commits, so it commits without them too, but its
committed actions are then other draws from the same distribution (its generator no longer also
serves the stopping rule's calls during trials), so its figures differ from a run with trials.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from scall_env.cache import write_text_atomic
from scall_env.search import constant_policy_trials
from scall_env.sizing import FrequencySizer, Sizer, UniformSizer


class Baseline:
    """A policy that needs no learning; :meth:`learn` just plays the environment.

    Args:
        env: The environment (its action space shapes the actions).
        seed: Seed of any randomness.
        **params: The baseline's own parameters (see subclasses).
    """

    name: ClassVar[str] = ""
    #: True when the agent's commits never depend on the search's trials, so it may skip them.
    commit_only: ClassVar[bool] = False

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, **params: Any) -> None:
        self.env = env
        self.seed = seed
        self.params = params
        self.num_timesteps = 0
        self._last_obs: np.ndarray | None = None
        self.action_space = (
            env.action_space if env is not None else gym.spaces.Box(-1.0, 1.0, (3,), np.float32)
        )

    @classmethod
    def sizer(cls, **params: Any) -> Sizer | None:
        """The sizer the environment must use for this baseline (``None``: the env's default)."""
        return None

    def action(self, observation: np.ndarray) -> np.ndarray:
        """The action for one observation."""
        return np.zeros(self.action_space.shape, dtype=np.float32)

    def predict(
        self,
        observation: np.ndarray,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:
        """SB3-style ``predict``: one action per observation (batched observations too)."""
        obs = np.asarray(observation)
        if obs.ndim == 2:
            return np.stack([self.action(row) for row in obs]), None
        return self.action(obs), None

    def learn(
        self,
        total_timesteps: int,
        callback: Any = None,
        progress_bar: bool = False,
        max_episodes: int | None = None,
        *,
        commit_only: bool = False,
        reset_num_timesteps: bool = True,
        on_commit: Callable[[], None] | None = None,
    ) -> Baseline:
        """Play ``total_timesteps`` steps (resetting at episode ends); nothing is learned.

        Args:
            total_timesteps: Environment steps to take at most.
            callback: Ignored (accepted for SB3 compatibility).
            progress_bar: Ignored (accepted for SB3 compatibility).
            max_episodes: Stop once this many episodes ended (after the reset that follows, as
                SB3's ``StopTrainingOnMaxEpisodes`` does); ``None``: no limit.
            commit_only: Commit each segment without its search (agents whose
                :attr:`commit_only` is true; the env must have ``advance``: a
                :class:`~scall_env.wrappers.ScallMonitor` or the ``ScallEnv``). A commit counts
                as the :func:`~scall_env.search.constant_policy_trials` steps it replaces.
            reset_num_timesteps: Start afresh from ``reset(seed=seed)``; ``False`` continues
                where the last call or :meth:`set_state` left off (``total_timesteps`` more), as
                in SB3.
            on_commit: Called after each step that committed, once the env is ready for the
                next (after the reset that follows an episode), e.g. to write a checkpoint.

        Raises:
            ValueError: No env, ``commit_only`` for an agent that uses its trials or an env
                without ``advance``, or (without ``max_episodes``) a ``total_timesteps`` that is
                not a whole number of commits.
        """
        if self.env is None:
            raise ValueError("learn() needs an environment; pass env= when building the baseline")
        advance = getattr(self.env, "advance", None)
        if commit_only and (not self.commit_only or advance is None):
            raise ValueError(
                f"commit_only needs an agent that does not use its trials (not {self.name!r}: "
                f"{', '.join(k for k, v in BASELINES.items() if v.commit_only)}) and an env with "
                "advance() (a ScallMonitor or the ScallEnv)"
            )
        cost = constant_policy_trials(self.env.unwrapped.config) if commit_only else 1
        if max_episodes is None:
            check_commit_steps(total_timesteps, cost)
        if reset_num_timesteps or self._last_obs is None:
            self._last_obs, _ = self.env.reset(seed=self.seed)
            self.num_timesteps = 0
        end, episodes = self.num_timesteps + total_timesteps, 0
        while self.num_timesteps + cost <= end:
            if commit_only:
                advance(skip_search=True)
                committed, done = True, self.env.unwrapped.core.done
            else:
                obs, _, terminated, truncated, info = self.env.step(self.predict(self._last_obs)[0])
                self._last_obs, committed, done = obs, "commit" in info, terminated or truncated
            self.num_timesteps += cost
            if done:
                self._last_obs, _ = self.env.reset()
                episodes += 1
                if max_episodes is not None and episodes >= max_episodes:
                    break
            if committed and on_commit is not None:
                on_commit()
        return self

    def get_state(self) -> dict[str, Any]:
        """A copy of everything but the env (parameters, counters, generators, the last
        observation; a search agent's search too), for :meth:`set_state` (checkpoints)."""
        return copy.deepcopy({k: v for k, v in self.__dict__.items() if k != "env"})

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state` (then ``learn(..., reset_num_timesteps=False)``)."""
        self.__dict__.update(copy.deepcopy(state))

    def _payload(self) -> dict[str, Any]:
        """What :meth:`save` writes: the baseline's name, seed and parameters."""
        return {"baseline": self.name, "seed": self.seed, "params": _jsonable(self.params)}

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`_payload` as JSON (atomically)."""
        write_text_atomic(path, json.dumps(self._payload(), indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None) -> Baseline:
        """Read a baseline written by :meth:`save`."""
        payload = json.loads(Path(path).read_text())
        baseline_cls = BASELINES[payload["baseline"]]
        return baseline_cls(env=env, seed=payload["seed"], **payload["params"])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in params.items()}


def check_commit_steps(total_timesteps: int, cost: int) -> None:
    """Raise ``ValueError`` when ``total_timesteps`` is no whole number of commits that count as
    ``cost`` steps each (a commit without trials counts as the trials it replaces)."""
    if total_timesteps % cost:
        raise ValueError(
            f"a commit without trials counts as {cost} steps (the trials it replaces), so "
            f"total_timesteps must be a multiple of {cost}, got {total_timesteps} (or let the "
            "baseline run its trials: commit_only=False, --baseline-trials on the command lines)"
        )


class UniformBaseline(Baseline):
    """Every entity gets the same size (``budget // entities``, at most ``d_max``)."""

    name = "uniform"
    commit_only = True

    def __init__(self, env: gym.Env | None = None, seed: int | None = None) -> None:
        super().__init__(env, seed)

    @classmethod
    def sizer(cls, **params: Any) -> Sizer:
        return UniformSizer()


class FrequencyBaseline(Baseline):
    """Sizes proportional to ``(frequency + 1) ** beta`` (Ginart et al.'s mixed dimensions).

    Args:
        beta: Exponent (``params["beta"]``, default 0.5).
    """

    name = "frequency"
    commit_only = True

    def __init__(
        self, env: gym.Env | None = None, seed: int | None = None, beta: float = 0.5
    ) -> None:
        super().__init__(env, seed, beta=beta)

    @classmethod
    def sizer(cls, beta: float = 0.5, **params: Any) -> Sizer:
        return FrequencySizer(beta)


class RandomBaseline(Baseline):
    """Uniformly random actions from a seeded generator."""

    name = "random"
    commit_only = True

    def __init__(self, env: gym.Env | None = None, seed: int | None = None) -> None:
        super().__init__(env, seed)
        self._rng = np.random.default_rng(seed)

    def action(self, observation: np.ndarray) -> np.ndarray:
        low, high = self.action_space.low, self.action_space.high
        return self._rng.uniform(low, high).astype(np.float32)


class FixedBaseline(Baseline):
    """Always the same action.

    Args:
        action: The action in ``[-1, 1]^3`` (``params["action"]``, default zeros: the middle of
            every range).

    Raises:
        ValueError: An action of the wrong shape or outside the action space.
    """

    name = "fixed"
    commit_only = True

    def __init__(
        self,
        env: gym.Env | None = None,
        seed: int | None = None,
        action: list[float] | tuple[float, ...] | np.ndarray = (0.0, 0.0, 0.0),
    ) -> None:
        super().__init__(env, seed, action=list(np.asarray(action, dtype=float)))
        fixed = np.asarray(action, dtype=np.float32)
        if fixed.shape != self.action_space.shape or not self.action_space.contains(fixed):
            raise ValueError(
                f"fixed action must have shape {self.action_space.shape} with values in "
                f"[{self.action_space.low[0]}, {self.action_space.high[0]}], "
                f"got {np.asarray(action).tolist()}"
            )
        self._action = fixed

    def action(self, observation: np.ndarray) -> np.ndarray:
        return self._action.copy()


BASELINES: dict[str, type[Baseline]] = {
    cls.name: cls for cls in (UniformBaseline, FrequencyBaseline, RandomBaseline, FixedBaseline)
}
"""Baselines by name."""
