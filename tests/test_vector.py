"""Commit policies that travel: the agent's deterministic action reaches envs in subprocesses."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import SubprocVecEnv
from torch.utils.tensorboard import SummaryWriter

import scall_env  # noqa: F401  (registers the ids)
from agents.baselines import FixedBaseline
from agents.commit import CommitPolicySync, PolicySnapshot
from agents.factory import load_hyperparams, make_agent
from scall_env.env import ScallEnv
from scall_env.wrappers import ScallMonitor

ENV_ID = "Scall-Synthetic-v0"
SMALL: dict[str, Any] = {
    "search": "fixed",
    "search_steps": 2,
    "trial_batches": 5,
    "max_chunks": 2,
    "device": "cpu",
}
# the adaptive rule consults the policy after every trial; a tolerance of 1 settles it at once
ADAPTIVE: dict[str, Any] = {"search": "adaptive", "search_window": 2, "search_tolerance": 1.0}


def small_env(cache_dir: Path, **kwargs: Any) -> gym.Env:
    return gym.make(ENV_ID, cache_dir=cache_dir, **{**SMALL, **kwargs})


def test_policy_snapshot_is_the_agents_deterministic_action(tmp_path: Path) -> None:
    env = small_env(tmp_path)
    agent = SAC("MlpPolicy", env, seed=3, device="cpu", learning_starts=0, batch_size=2)
    obs = env.observation_space.sample()
    snapshot = PolicySnapshot(agent)
    np.testing.assert_array_equal(snapshot(obs), agent.predict(obs, deterministic=True)[0])
    agent.learn(4)  # the agent changes, the snapshot does not
    assert not np.array_equal(snapshot(obs), agent.predict(obs, deterministic=True)[0])


@pytest.mark.parametrize("algo", ["fixed", "random-search"])
def test_a_baselines_snapshot_leaves_its_env_behind(algo: str, tmp_path: Path) -> None:
    env = ScallMonitor(small_env(tmp_path), writer=SummaryWriter(str(tmp_path / "tb")))
    agent = make_agent(algo, env, load_hyperparams(algo, ENV_ID), seed=0)
    agent.learn(total_timesteps=3)
    obs = env.observation_space.sample()
    snapshot = pickle.loads(pickle.dumps(PolicySnapshot(agent)))  # a lock in the writer: no
    np.testing.assert_array_equal(snapshot(obs), agent.predict(obs, deterministic=True)[0])
    assert len(pickle.dumps(snapshot)) < 20_000 and agent.env is not None
    env.close()


def test_async_gym_vector_env_commits_the_policy_action(tmp_path: Path) -> None:
    small_env(tmp_path).reset(seed=0)  # warm the stream cache before the workers start
    agent = SAC("MlpPolicy", small_env(tmp_path), seed=0, device="cpu")
    snapshot = PolicySnapshot(agent)
    envs = gym.make_vec(
        ENV_ID,
        num_envs=2,
        vectorization_mode="async",
        vector_kwargs={"context": "forkserver"},  # a fork of a process using torch can hang
        cache_dir=tmp_path,
        commit="policy",
        commit_policy=snapshot,
        **SMALL,
    )
    try:
        envs.reset(seed=[0, 1])
        actions = np.zeros((2, 3), dtype=np.float32)
        _, _, _, _, infos = envs.step(actions)
        assert "commit" not in infos
        _, _, _, _, infos = envs.step(actions)  # second trial: both envs commit
        for i in range(2):
            seen = np.asarray(infos["commit_observation"][i])
            committed = np.asarray(infos["commit"]["action"][i], dtype=np.float32)
            np.testing.assert_array_equal(committed, snapshot(seen))
        # a new policy reaches the workers through call()
        fixed = PolicySnapshot(FixedBaseline(action=[0.5, -0.25, 0.75]))
        envs.call("set_commit_policy", fixed)
        envs.step(actions)
        _, _, _, _, infos = envs.step(actions)
        for i in range(2):
            np.testing.assert_allclose(infos["commit"]["action"][i], [0.5, -0.25, 0.75])
    finally:
        envs.close()


class CommitChecker(BaseCallback):
    """Compares every commit made in a worker with the model's deterministic action."""

    def __init__(self) -> None:
        super().__init__()
        self.checked = 0

    def _on_step(self) -> bool:
        for info in self.locals["infos"]:
            if "commit" in info:
                expected = self.model.predict(info["commit_observation"], deterministic=True)[0]
                np.testing.assert_array_equal(
                    np.asarray(info["commit"]["action"], dtype=np.float32), expected
                )
                self.checked += 1
        return True


@pytest.mark.parametrize("search", [{}, ADAPTIVE], ids=["fixed", "adaptive"])
def test_subproc_vec_env_sac_learns_with_the_agents_commit_action(
    search: dict[str, Any], tmp_path: Path
) -> None:
    small_env(tmp_path).reset(seed=0)  # warm the stream cache before the workers start
    vec = SubprocVecEnv(
        [lambda: small_env(tmp_path, commit="policy", **search) for _ in range(2)],
        start_method="forkserver",
    )
    try:
        agent = SAC("MlpPolicy", vec, seed=0, device="cpu", learning_starts=0, batch_size=4)
        checker = CommitChecker()
        agent.learn(total_timesteps=8, callback=CallbackList([CommitPolicySync(), checker]))
        assert checker.checked == 4  # 4 steps per env, a commit every 2 trials
    finally:
        vec.close()


def test_policy_commit_without_a_policy_is_a_clear_error(tmp_path: Path) -> None:
    env = ScallEnv(**{**gym.spec(ENV_ID).kwargs, **SMALL}, cache_dir=tmp_path, commit="policy")
    env.reset(seed=0)
    env.step(np.zeros(3, dtype=np.float32))
    assert env.policy_due()
    with pytest.raises(RuntimeError, match="commit='policy' needs a commit policy"):
        env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="commit_policy must be a callable"):
        env.set_commit_policy("not callable")  # type: ignore[arg-type]
