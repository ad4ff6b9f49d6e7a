"""Baselines with the same interface as an SB3 model: ``learn``, ``predict``, ``save``, ``load``.

They learn nothing. ``uniform`` and ``frequency`` decide sizes directly: they hand the environment
their :class:`~scall_env.sizing.Sizer` (:meth:`Baseline.sizer`), so the harness builds their
environment with ``sizer=...`` and no other special case; their action is ignored by that sizer.
``random`` draws seeded uniform actions, ``fixed`` always returns a given action.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from scall_env.sizing import FrequencySizer, Sizer, UniformSizer


class Baseline:
    """A policy that needs no learning; :meth:`learn` just plays the environment.

    Args:
        env: The environment (its action space shapes the actions).
        seed: Seed of any randomness.
        **params: The baseline's own parameters (see subclasses).
    """

    name: ClassVar[str] = ""

    def __init__(self, env: gym.Env | None = None, seed: int | None = None, **params: Any) -> None:
        self.env = env
        self.seed = seed
        self.params = params
        self.num_timesteps = 0
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
    ) -> Baseline:
        """Play ``total_timesteps`` steps (resetting at episode ends); nothing is learned.

        Args:
            total_timesteps: Environment steps to take at most.
            callback: Ignored (accepted for SB3 compatibility).
            progress_bar: Ignored (accepted for SB3 compatibility).
            max_episodes: Stop once this many episodes ended (after the reset that follows, as
                SB3's ``StopTrainingOnMaxEpisodes`` does); ``None``: no limit.
        """
        if self.env is None:
            raise ValueError("learn() needs an environment; pass env= when building the baseline")
        obs, _ = self.env.reset(seed=self.seed)
        episodes = 0
        for _ in range(total_timesteps):
            obs, _, terminated, truncated, _ = self.env.step(self.predict(obs)[0])
            self.num_timesteps += 1
            if terminated or truncated:
                obs, _ = self.env.reset()
                episodes += 1
                if max_episodes is not None and episodes >= max_episodes:
                    break
        return self

    def save(self, path: str | os.PathLike) -> None:
        """Write the baseline's name, seed and parameters as JSON."""
        payload = {"baseline": self.name, "seed": self.seed, "params": _jsonable(self.params)}
        Path(path).write_text(json.dumps(payload, indent=2))

    @classmethod
    def load(cls, path: str | os.PathLike, env: gym.Env | None = None) -> Baseline:
        """Read a baseline written by :meth:`save`."""
        payload = json.loads(Path(path).read_text())
        baseline_cls = BASELINES[payload["baseline"]]
        return baseline_cls(env=env, seed=payload["seed"], **payload["params"])


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in params.items()}


class UniformBaseline(Baseline):
    """Every entity gets the same size (``budget // entities``, at most ``d_max``)."""

    name = "uniform"

    @classmethod
    def sizer(cls, **params: Any) -> Sizer:
        return UniformSizer()


class FrequencyBaseline(Baseline):
    """Sizes proportional to ``(frequency + 1) ** beta`` (Ginart et al.'s mixed dimensions).

    Args:
        beta: Exponent (``params["beta"]``, default 0.5).
    """

    name = "frequency"

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
