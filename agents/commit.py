"""The agent's deterministic action as the env's commit policy, in-process or across processes.

SCALL commits each segment with the agent's deterministic (mean) action on that segment's
observation. In one process the env can simply call the live agent (:func:`live_policy`). An env
in another process (SB3's ``SubprocVecEnv``, Gymnasium's async vector env, a remote worker)
cannot, so the agent side sends it a picklable snapshot of the policy
(:class:`PolicySnapshot`) right before the step that commits: :class:`CommitPolicySync` does this
during SB3's ``learn`` by asking each env whether its next step commits (``policy_due``) and
pushing the current policy to those that do (``set_commit_policy``). The snapshot is taken after
the agent's last update, so the committed action equals what ``agent.predict(obs,
deterministic=True)`` returns at that moment, exactly as in one process.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from scall_env.config import CommitPolicy


def live_policy(agent: Any) -> CommitPolicy:
    """The agent's current deterministic action (for an env in the same process)."""
    return lambda obs: agent.predict(obs, deterministic=True)[0]


class PolicySnapshot:
    """A picklable copy of an agent's policy that returns its deterministic action.

    Args:
        agent: An SB3 algorithm (its ``policy`` is copied) or a baseline (copied with everything
            but its env, which the snapshot never needs).
    """

    def __init__(self, agent: Any) -> None:
        policy = getattr(agent, "policy", None)
        if policy is None:  # a baseline: the env would drag the stream and models along
            agent = copy.copy(agent)
            agent.env = None
        self._predictor = copy.deepcopy(agent if policy is None else policy)

    def __call__(self, observation: np.ndarray) -> np.ndarray:
        return self._predictor.predict(observation, deterministic=True)[0]


class CommitPolicySync(BaseCallback):
    """Keeps the commit policy of every env of the training ``VecEnv`` current.

    Before each rollout (after the agent's updates) and after each step, the envs whose next step
    commits receive a fresh :class:`PolicySnapshot` of the model; the others receive nothing, so
    the cost is one copy per segment and env.
    """

    def _push(self) -> None:
        env: VecEnv = self.training_env
        due = [i for i, flag in enumerate(env.env_method("policy_due")) if flag]
        if due:
            env.env_method("set_commit_policy", PolicySnapshot(self.model), indices=due)

    def _on_training_start(self) -> None:
        self._push()

    def _on_rollout_start(self) -> None:
        self._push()

    def _on_step(self) -> bool:
        self._push()
        return True
