"""Contracts whose expected values are computed here, independently of the code under test.

Each test recomputes what the protocol (``shared/spec/SCALL.md``) or the documentation promises
from raw ingredients (the stream's entity counts, the model's stored tables, the info dict) rather
than asking the implementation, so that a plausible slip in the implementation fails it:

* the budget is ``c * (n_users + n_items)`` of the segment and never exceeded;
* a budget exactly at ``min_size * (n_users + n_items)`` is feasible;
* the reward is ``10 * (fitness / reference - low) / (high - low)``;
* a commit warm-starts: old entities start from their previous values, zeros beyond them;
* ``alpha_user`` shapes the users' sizes and ``alpha_item`` the items';
* the harness commits the agent's deterministic action and averages segments ``>= 1`` only;
* the bounded observation holds what its documentation says, entry by entry;
* a saved SB3 agent predicts exactly like the trained agent in memory;
* CI cannot pass with the real-data tests skipped.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from _tiny import tiny_env
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3

import agents.harness
import scall_env.search
from agents.baselines import Baseline
from agents.harness import METRICS, run_agent
from agents.scall import ScallSAC
from scall_env.config import EnvConfig
from scall_env.registration import SYNTHETIC_KWARGS
from scall_env.search import SearchCore
from scall_env.sizing import SizeDecision

ROOT = Path(__file__).resolve().parents[1]
TINY = tiny_env(
    n_segments=4, budget=8, n_groups=8, search="fixed", search_steps=2, max_chunks=2, device="cpu"
)
ACTIONS = [np.array(a, np.float32) for a in ([0.3, -0.6, 0.2], [-0.4, 0.5, -0.8], [0.0] * 3)]


def tiny_config(**kwargs: Any) -> EnvConfig:
    """The settings of ``tiny_env`` as an :class:`EnvConfig` (for :class:`SearchCore`)."""
    return EnvConfig(**{**SYNTHETIC_KWARGS, **TINY, **kwargs})


def tiny_env(tmp_path: Path, **kwargs: Any) -> gym.Env:
    return gym.make("Scall-Synthetic-v0", cache_dir=tmp_path, **{**TINY, **kwargs})


def own_budget(env: gym.Env, segment: int, c: float) -> int:
    """``floor(c * (n_users + n_items))`` from the stream's entity counts of ``segment``."""
    n_users, n_items = env.unwrapped.stream.entity_counts(segment)
    return math.floor(c * (n_users + n_items))


# ----------------------------------------------------------------------------- budget
@pytest.mark.parametrize("c", [8, 5.5])
def test_params_used_never_exceed_c_times_entities(tmp_path: Path, c: float) -> None:
    env = tiny_env(tmp_path, budget=c)
    _, info = env.reset(seed=0)
    records = [info["commit"]]
    for i in range(6):  # one pass: 2 trials on each of segments 0..2
        _, _, _, _, info = env.step(ACTIONS[i % len(ACTIONS)])
        budget = own_budget(env, info["segment"], c)
        assert info["budget_params"] == budget and 0 < info["params_used"] <= budget
        records += [info["commit"]] if "commit" in info else []
    assert [r["segment"] for r in records] == [0, 1, 2, 3]
    for record in records:
        budget = own_budget(env, record["segment"], c)
        n_users, n_items = env.unwrapped.stream.entity_counts(record["segment"])
        assert record["budget_params"] == budget
        # committed sizes spend the budget (within rounding: less than one per entity)
        assert budget - (n_users + n_items) < record["params_used"] <= budget


@pytest.mark.parametrize("min_size", [1, 2])
def test_budget_exactly_at_the_minimum_is_feasible(tmp_path: Path, min_size: int) -> None:
    at_minimum = SearchCore(tiny_config(budget=min_size, min_size=min_size, cache_dir=tmp_path))
    at_minimum.check_budget()  # budget == min_size * (n_users + n_items) on every segment
    below = SearchCore(tiny_config(budget=min_size * 0.999, min_size=min_size, use_cache=False))
    with pytest.raises(ValueError, match="need at least"):
        below.check_budget()


# ----------------------------------------------------------------------------- reward
def test_reward_is_the_rescaled_fitness_ratio(tmp_path: Path) -> None:
    low, high = 0.7, 1.2
    env = tiny_env(tmp_path, reward_bounds=(low, high))
    env.reset(seed=0)
    for i in range(6):
        record = env.unwrapped.committed[-1]  # the segment being searched
        _, reward, _, _, info = env.step(ACTIONS[i % len(ACTIONS)])
        assert info["segment"] == record["segment"]
        assert info["fitness"] == pytest.approx((info["recall@20"] + info["ndcg@20"]) / 2)
        expected = 10 * (info["fitness"] / record["reference_fitness"] - low) / (high - low)
        assert reward == pytest.approx(expected, rel=1e-9, abs=1e-12)


# ------------------------------------------------------------------------- warm start
def test_commit_starts_old_entities_from_their_previous_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    core = SearchCore(tiny_config(use_cache=False))
    core.start(seed=0)
    before = {k: v.detach().clone() for k, v in core.model.state_dict().items()}
    at_training_start: dict[str, torch.Tensor] = {}
    real_training = scall_env.search.train_to_convergence

    def spy(model: Any, *args: Any, **kwargs: Any) -> Any:
        at_training_start.update({k: v.detach().clone() for k, v in model.state_dict().items()})
        return real_training(model, *args, **kwargs)

    monkeypatch.setattr(scall_env.search, "train_to_convergence", spy)
    core.commit(SizeDecision(0.4, 0.2, 0.8), 1, 2)
    for table in ("user_table", "item_table"):
        old_w, old_sizes = before[f"{table}.weight"], before[f"{table}.sizes"]
        new_w, new_sizes = at_training_start[f"{table}.weight"], at_training_start[f"{table}.sizes"]
        n_old = old_w.shape[0]
        assert new_w.shape[0] > n_old  # the segment brought new entities
        for i in range(n_old):
            keep, grown = min(int(old_sizes[i]), int(new_sizes[i])), int(new_sizes[i])
            assert torch.equal(new_w[i, :keep], old_w[i, :keep]), (table, i)
            assert not new_w[i, keep:grown].any(), (table, i)  # grown columns start at zero
        assert old_w.abs().sum() > 0 and new_w[n_old:].abs().sum() > 0  # not vacuous


# ------------------------------------------------------------------------ alpha sides
def test_alpha_user_shapes_users_and_alpha_item_shapes_items(tmp_path: Path) -> None:
    env = tiny_env(tmp_path, search_steps=3)
    env.reset(seed=0)
    skew = {}
    for name, action in (("users skewed", [0.0, -0.9, 0.9]), ("items skewed", [0.0, 0.9, -0.9])):
        _, _, _, _, info = env.step(np.array(action, np.float32))
        skew[name] = {
            side: info[f"{side}_size_max"] / info[f"{side}_size_mean"] for side in ("user", "item")
        }
    assert skew["users skewed"]["user"] > skew["users skewed"]["item"]
    assert skew["items skewed"]["item"] > skew["items skewed"]["user"]


# ------------------------------------------------------------------------------ harness
class Scripted(Baseline):
    """Trials take one action; the deterministic action (what commits) is another."""

    name = "fixed"
    TRIAL = np.array([0.5, -0.5, 0.5], np.float32)
    COMMIT = np.array([-0.3, 0.4, -0.2], np.float32)

    def predict(
        self, observation: np.ndarray, state: Any = None, episode_start: Any = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, None]:  # fmt: skip
        return (self.COMMIT if deterministic else self.TRIAL).copy(), None


@pytest.fixture(scope="module")
def scripted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scripted")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(agents.harness, "make_agent", lambda algo, env, *a, **k: Scripted(env, 0))
        run_agent("fixed", "Scall-Synthetic-v0", env_kwargs={**TINY, "cache_dir": str(out)},
                  seed=0, device="cpu", run_dir=out / "run")  # fmt: skip
    return out / "run"


def test_harness_commits_the_agents_deterministic_action(scripted_run: Path) -> None:
    segments = pd.read_csv(scripted_run / "segments.csv")
    later = segments[segments["segment"] >= 1]
    assert list(later["segment"]) == [1, 2, 3]
    for text in later["action"]:
        np.testing.assert_allclose(json.loads(text), Scripted.COMMIT, rtol=0, atol=1e-7)


def test_averages_are_over_segments_from_one(scripted_run: Path) -> None:
    segments = pd.read_csv(scripted_run / "segments.csv")
    first_pass = segments[(segments["episode"] == 0) & (segments["segment"] >= 1)]
    averages = json.loads((scripted_run / "results.json").read_text())["averages"]
    for metric in METRICS:
        assert averages[metric] == pytest.approx(first_pass[metric].mean(), rel=1e-12)
    with_zero = segments[segments["episode"] == 0]["recall@20"].mean()
    assert averages["recall@20"] != pytest.approx(with_zero, rel=1e-9)  # the check can fail


# -------------------------------------------------------------------------- observation
def masked_means(state: dict[str, torch.Tensor], table: str, d_max: int) -> np.ndarray:
    """Mean over entities of the stored table, columns past each entity's size zeroed."""
    weight, sizes = state[f"{table}.weight"].numpy(), state[f"{table}.sizes"].numpy()
    masked = np.where(np.arange(weight.shape[1]) < sizes[:, None], weight, 0.0)
    return np.pad(masked.mean(axis=0), (0, d_max - weight.shape[1]))


def check_bounded(
    env: gym.Env, obs: np.ndarray, reward: float, spread: tuple[float, float]
) -> None:
    inner = env.unwrapped
    g, d = TINY["n_groups"], TINY["d_max"]
    t = inner.segment_index
    n_users, n_items = inner.stream.entity_counts(t)
    state = {k: v.detach().cpu() for k, v in inner.core.model.state_dict().items()}
    assert obs.shape == (2 * g + 2 * d + 6,)
    assert obs[2 * g] == pytest.approx(math.tanh(reward / 10), abs=1e-6)
    assert obs[2 * g + 1] == pytest.approx(n_users / (n_users + n_items), abs=1e-6)
    means = np.tanh(
        np.r_[masked_means(state, "user_table", d), masked_means(state, "item_table", d)]
    )
    np.testing.assert_allclose(obs[2 * g + 2 : 2 * g + 2 + 2 * d], means, atol=1e-6)
    np.testing.assert_allclose(obs[2 * g + 2 + 2 * d : 2 * g + 4 + 2 * d], spread, atol=1e-6)
    assert obs[-1] == pytest.approx(t / (TINY["n_segments"] - 1))


def committed_spread(env: gym.Env) -> tuple[float, float]:
    state = env.unwrapped.core.model.state_dict()
    user, item = (state[f"{side}_table.sizes"].numpy() for side in ("user", "item"))
    return float(np.ptp(user)) / TINY["d_max"], float(np.ptp(item)) / TINY["d_max"]


def test_bounded_observation_entries(tmp_path: Path) -> None:
    env = tiny_env(tmp_path, observation="bounded")
    obs, _ = env.reset(seed=0)
    check_bounded(env, obs, 0.0, committed_spread(env))
    for i in range(4):
        obs, reward, _, _, info = env.step(ACTIONS[i % len(ACTIONS)])
        if "commit" in info:  # a new segment: no trial on it yet, the committed sizes
            check_bounded(env, obs, 0.0, committed_spread(env))
        else:
            spread = tuple((info[f"{s}_size_max"] - info[f"{s}_size_min"]) / TINY["d_max"]
                           for s in ("user", "item"))  # fmt: skip
            check_bounded(env, obs, reward, spread)
            assert obs[-2] == pytest.approx((info["trial"] + 1) / TINY["search_steps"])


# ------------------------------------------------------------------------ SB3 save/load
SB3_SETTINGS: list[tuple[type, dict[str, Any]]] = [
    (ScallSAC, {}),
    (SAC, {"learning_starts": 2, "batch_size": 4}),
    (TD3, {"learning_starts": 2, "batch_size": 4}),
    (DDPG, {"learning_starts": 2, "batch_size": 4}),
    (PPO, {"n_steps": 8, "batch_size": 4, "n_epochs": 1}),
    (A2C, {"n_steps": 4}),
]


@pytest.mark.parametrize(("algo", "extra"), SB3_SETTINGS, ids=lambda v: getattr(v, "__name__", ""))
def test_sb3_agents_learn_and_load_as_trained(
    algo: type, extra: dict[str, Any], tmp_path: Path
) -> None:
    """Replaces test_env.py::test_sb3_algorithms_learn, which never compared a trained model with
    its saved copy (a save/load test must compare the in-memory model with the loaded one)."""
    env = tiny_env(tmp_path)
    policy = "ScallSACPolicy" if algo is ScallSAC else "MlpPolicy"
    small = {} if algo is ScallSAC else {"policy_kwargs": {"net_arch": [16]}}
    model = algo(policy, env, seed=0, device="cpu", **small, **extra)
    initial = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(total_timesteps=10)
    trained = model.policy.state_dict()
    assert any(not torch.equal(initial[k], trained[k]) for k in initial), "nothing was learned"
    model.save(tmp_path / "model.zip")
    loaded = algo.load(tmp_path / "model.zip", env=env, device="cpu")
    observations = np.stack([env.observation_space.sample() for _ in range(8)])
    observations = np.clip(observations, -5, 5)  # the paper layout is unbounded
    np.testing.assert_array_equal(
        loaded.predict(observations, deterministic=True)[0],
        model.predict(observations, deterministic=True)[0],
    )
    fresh = algo(policy, env, seed=0, device="cpu", **small, **extra)  # the check can fail
    assert not np.array_equal(
        fresh.predict(observations, deterministic=True)[0],
        model.predict(observations, deterministic=True)[0],
    )


# ---------------------------------------------------------------------------------- CI
def test_required_real_data_turns_skips_into_failures(tmp_path: Path) -> None:
    """With SCALL_REQUIRE_DATA=1 (set by .ci/run) a real-data test cannot pass by skipping."""
    env = {**os.environ, "SCALL_REQUIRE_DATA": "1", "SCALL_DATA_DIR": str(tmp_path)}
    tests = [
        "tests/test_data.py::test_real_ml_100k",
        "tests/test_stream.py::test_movielens_100k_stream",
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider"]
        + tests,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 1, run.stdout
    assert "2 failed" in run.stdout and "SCALL_REQUIRE_DATA=1 requires it" in run.stdout
    assert "SCALL_REQUIRE_DATA=1" in (ROOT / ".ci" / "run").read_text()
