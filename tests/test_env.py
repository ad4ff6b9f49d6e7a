"""The Gymnasium environment: spaces, protocol, determinism, errors, checkers, SB3."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from _tiny import tiny_env
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import scall_env
from scall_env.env import ScallEnv, pooled_frequencies
from scall_env.sizing import FrequencySizer, SizeAssignment, SizeDecision, split_budget

TINY = tiny_env(
    dataset="synthetic",
    base_model="mf",
    n_segments=4,
    budget=8,
    n_groups=8,
    search="fixed",
    search_steps=2,
    max_chunks=3,
    device="cpu",
)


@pytest.fixture
def tiny(tmp_path: Path) -> ScallEnv:
    return ScallEnv(**TINY, cache_dir=tmp_path)


def run_episode(env: ScallEnv, seed: int) -> tuple[list[np.ndarray], list[float], list[dict]]:
    obs, _ = env.reset(seed=seed)
    observations, rewards, infos = [obs], [], []
    terminated = False
    action_rng = np.random.default_rng(0)
    while not terminated:
        action = action_rng.uniform(-1, 1, size=3).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        assert not truncated
        observations.append(obs)
        rewards.append(reward)
        infos.append(info)
    return observations, rewards, infos


def test_pooled_frequencies() -> None:
    pooled = pooled_frequencies(np.array([5, 1, 3, 1]), 2)
    np.testing.assert_allclose(pooled, [(1.0 + 0.5) / 2, 0.0])
    few = pooled_frequencies(np.array([3, 1]), 4)  # fewer entities than groups
    np.testing.assert_allclose(few, [1, 1, 0, 0])
    assert pooled_frequencies(np.full(7, 4), 3).tolist() == [0, 0, 0]
    big = pooled_frequencies(np.random.default_rng(0).integers(0, 50, 10_000), 256)
    assert big.shape == (256,) and np.all(np.diff(big) <= 0) and big[0] <= 1 and big[-1] >= 0


def test_episode_protocol(tiny: ScallEnv) -> None:
    observations, rewards, infos = run_episode(tiny, seed=0)
    n_segments = len(tiny.stream)
    assert len(rewards) == tiny.config.search_steps * (n_segments - 1) == tiny.max_episode_steps()
    assert all(o.shape == tiny.observation_space.shape for o in observations)
    assert all(tiny.observation_space.contains(o) for o in observations)
    commits = [info["commit"] for info in infos if "commit" in info]
    assert [c["segment"] for c in commits] == list(range(1, n_segments))
    assert [c["segment"] for c in tiny.committed] == list(range(n_segments))
    for info in infos:
        assert info["params_used"] <= info["budget_params"]
        for key in ("segment", "fitness", "recall@20", "ndcg@20", "user_size_max", "item_size_min"):
            assert key in info
        assert 1 <= info["user_size_min"] <= info["user_size_mean"] <= info["user_size_max"] <= 16
    for commit in commits:
        assert commit["params_used"] <= commit["budget_params"]
        assert {"recall@5", "recall@10", "recall@20", "ndcg@5", "ndcg@10", "ndcg@20"} <= set(commit)
    with pytest.raises(RuntimeError, match="episode has terminated"):
        tiny.step(np.zeros(3, np.float32))


def test_same_seed_same_run_and_different_seeds_differ(tmp_path: Path) -> None:
    a = run_episode(ScallEnv(**TINY, cache_dir=tmp_path / "a"), seed=3)
    b = run_episode(ScallEnv(**TINY, cache_dir=tmp_path / "b"), seed=3)
    c = run_episode(ScallEnv(**TINY, cache_dir=tmp_path / "c"), seed=4)
    assert a[1] == b[1]
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0], strict=True))
    assert a[1] != c[1]


def test_reset_reuses_segment0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = ScallEnv(**TINY, cache_dir=tmp_path)
    first, _ = env.reset(seed=5)
    assert len(list((tmp_path / "segment0").glob("*.pt"))) == 1

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("segment 0 was retrained")

    monkeypatch.setattr("scall_env.search.train_to_convergence", fail)
    again, _ = env.reset(seed=5)  # memory cache
    env.reset()  # an unseeded reset (vectorised auto-reset) keeps the segment-0 model
    fresh, _ = ScallEnv(**TINY, cache_dir=tmp_path).reset(seed=5)  # disk cache
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        (np.zeros(2), r"shape \(3,\)"),
        (np.array([0.0, np.nan, 0.0]), "must be finite"),
        (np.array([0.0, 1.5, 0.0]), r"must lie in \[-1, 1\]"),
    ],
)
def test_bad_action(tiny: ScallEnv, action: np.ndarray, message: str) -> None:
    tiny.reset(seed=0)
    with pytest.raises(ValueError, match=message):
        tiny.step(action)


def test_action_mapping_is_affine_and_inside_open_interval(tiny: ScallEnv) -> None:
    decision = SizeDecision.from_action(np.array([-1.0, 0.0, 1.0]))
    assert 0 < decision.ratio < 1e-5 and decision.alpha_user == pytest.approx(0.5)
    assert 1 - 1e-5 < decision.alpha_item < 1


def test_step_before_reset(tiny: ScallEnv) -> None:
    with pytest.raises(RuntimeError, match="call reset"):
        tiny.step(np.zeros(3, np.float32))


def test_budget_too_small_is_reported_before_training(tmp_path: Path) -> None:
    env = ScallEnv(**{**TINY, "budget_type": "B", "budget": 0.001}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"allows 250 parameters on segment 0, but its \d+ users"):
        env.reset(seed=0)
    assert not (tmp_path / "segment0").exists()


def test_single_segment_stream_is_refused(tmp_path: Path) -> None:
    env = ScallEnv(**{**TINY, "n_segments": 1}, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="the stream has 1 segment; the search needs at least 2"):
        env.reset(seed=0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"budget_type": "mb"}, "budget_type must be one of"),
        ({"budget": -1}, "budget must be a finite number > 0"),
        ({"base_model": "bert"}, "unknown base_model 'bert'"),
        ({"search_steps": 0}, "search_steps must be an integer >= 1"),
        ({"reward_bounds": (1.2, 0.9)}, "reward_bounds must be finite"),
        ({"min_size": 32}, r"min_size \(32\) must not exceed d_max \(16\)"),
        ({"distribution": "zipf"}, "zipf"),
        ({"n_segments": 0}, "n_segments must be an integer >= 1"),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        ScallEnv(**{**TINY, **kwargs}, cache_dir=tmp_path)


def test_commit_policy_and_explicit_advance(tmp_path: Path) -> None:
    seen: list[np.ndarray] = []

    def policy(obs: np.ndarray) -> np.ndarray:
        seen.append(obs)
        return np.array([0.5, -0.5, 0.0], np.float32)

    env = ScallEnv(**TINY, cache_dir=tmp_path, commit_policy=policy)
    env.reset(seed=0)
    for _ in range(env.config.search_steps):
        _, _, _, _, info = env.step(np.zeros(3, np.float32))
    assert info["commit"]["action"] == [0.5, -0.5, 0.0]
    assert len(seen) == 1 and seen[0].shape == env.observation_space.shape
    record = env.advance(np.array([0.0, 0.0, 0.0]))
    assert record["segment"] == 2 and env.segment_index == 2 and env.committed[-1] == record


def test_default_commit_is_best_trial(tmp_path: Path) -> None:
    env = ScallEnv(**{**TINY, "search_steps": 3}, cache_dir=tmp_path)
    env.reset(seed=1)
    actions = [np.array([x, 0.0, 0.0], np.float32) for x in (-0.5, 0.0, 0.5)]
    rewards = []
    for action in actions:
        _, reward, _, _, info = env.step(action)
        rewards.append(reward)
    assert info["commit"]["action"] == pytest.approx(actions[int(np.argmax(rewards))].tolist())


@pytest.mark.parametrize(("mode", "trial"), [("last", 2), ("first", 0)])
def test_commit_last_or_first_trial(mode: str, trial: int, tmp_path: Path) -> None:
    env = ScallEnv(**{**TINY, "search_steps": 3, "commit": mode}, cache_dir=tmp_path)
    env.reset(seed=1)
    actions = [np.array([x, -x, 0.25], np.float32) for x in (-0.5, 0.0, 0.5)]
    for action in actions:
        _, _, _, _, info = env.step(action)
    assert info["commit"]["action"] == pytest.approx(actions[trial].tolist())


@pytest.mark.parametrize("ratio_base", ["budget", "free"])
def test_ratio_base_splits_the_budget(ratio_base: str, tmp_path: Path) -> None:
    env = ScallEnv(
        **TINY, ratio_base=ratio_base, trial_sizing="exact", cache_dir=tmp_path / ratio_base
    )
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.zeros(3, np.float32))  # ratio 0.5
    segment = env.core.segment(env.core.segment_index)
    users, _ = split_budget(
        info["budget_params"], segment.n_users, segment.n_items, 0.5, d_max=16, base=ratio_base
    )
    assert info["params_used"] == info["budget_params"]
    assert round(info["user_share"] * info["budget_params"]) == users
    # the tiny stream's bases differ: half the budget, or the minimums plus half of the rest
    free = info["budget_params"] - segment.n_users - segment.n_items
    expected = {"budget": round(0.5 * info["budget_params"]), "free": segment.n_users + free / 2}
    assert users == pytest.approx(expected[ratio_base], abs=0.5)


def test_advance_needs_a_reset_and_stops_at_the_end(tmp_path: Path) -> None:
    env = ScallEnv(**TINY, cache_dir=tmp_path)
    with pytest.raises(RuntimeError, match=r"call reset\(\) before advance\(\)"):
        env.advance()
    env.reset(seed=0)
    zeros = np.zeros(3, np.float32)
    while not env.core.done:
        env.advance(zeros)
    assert env.segment_index == env.core.n_segments - 1
    with pytest.raises(RuntimeError, match=r"every segment is already committed; reset\(\)"):
        env.advance(zeros)


def test_pluggable_sizer(tmp_path: Path) -> None:
    sizer = FrequencySizer(beta=0.5)
    env = ScallEnv(**TINY, sizer=sizer, cache_dir=tmp_path)
    env.reset(seed=0)
    segment = env.core.segment(env.core.segment_index)
    _, _, _, _, info = env.step(np.zeros(3, np.float32))
    expected = sizer.sizes(
        None, segment.user_freq, segment.item_freq, info["budget_params"], d_max=16
    )
    for side, sizes in (("user", expected.user_sizes), ("item", expected.item_sizes)):
        got = [info[f"{side}_size_{stat}"] for stat in ("min", "mean", "max")]
        assert got == pytest.approx([sizes.min(), sizes.mean(), sizes.max()])
    assert info["params_used"] == expected.params_used <= info["budget_params"]
    _, _, _, _, again = env.step(np.ones(3, np.float32))  # the sizer ignores the action
    assert [again[key] for key in ("user_size_max", "item_size_mean")] == [
        info[key] for key in ("user_size_max", "item_size_mean")
    ]


def test_a_sizer_over_the_budget_stops_the_trial(tmp_path: Path) -> None:
    class Wide:  # duck-typed, not a Sizer: the env checks what it returns all the same
        def sizes(self, decision, user_freq, item_freq, budget, *, d_max, min_size):
            return SizeAssignment.build(
                np.full(len(user_freq), d_max), np.full(len(item_freq), d_max), budget
            )

    env = ScallEnv(**TINY, sizer=Wide(), cache_dir=tmp_path)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"the sizer Wide uses \d+ parameters, over the budget"):
        env.step(np.zeros(3, np.float32))


def test_registered_ids() -> None:
    for env_id in ("Scall-ML1M-v0", "Scall-ML1M-MF-v0", "Scall-ML100K-v0", "Scall-Synthetic-v0"):
        assert env_id in gym.registry
    assert scall_env.ENV_KWARGS["Scall-ML1M-MF-v0"]["base_model"] == "mf"
    spec = gym.spec("Scall-ML1M-v0")
    assert spec.kwargs == {"dataset": "ml-1m"}  # every other setting: the paper's defaults
    config = gym.make("Scall-ML1M-v0").unwrapped.config
    assert (config.base_model, config.budget_type, config.budget, config.d_max) == (
        "lightgcn", "c", 32, 256,
    )  # fmt: skip
    assert config.search_steps == 11
    assert config.stream_config.n_segments == 10 and config.stream_config.k_core == 10


SHRINK: dict[str, Any] = {
    "d_max": 8,
    "n_groups": 8,
    "search_steps": 1,
    "trial_batches": 2,
    "batch_size": 64,
    "max_chunks": 1,
    "device": "cpu",
}
DATA_DIR = os.environ.get("SCALL_DATA_DIR")


def _checkable_ids() -> list[Any]:
    ids = [pytest.param("Scall-Synthetic-v0", {})]
    for env_id, folder in (
        ("Scall-ML1M-v0", "ml-1m"),
        ("Scall-ML1M-MF-v0", "ml-1m"),
        ("Scall-ML100K-v0", "ml-100k"),
    ):
        ids.append(
            pytest.param(
                env_id,
                {**SHRINK, "data_dir": DATA_DIR},
                marks=[
                    pytest.mark.realdata,
                    pytest.mark.skipif(
                        not DATA_DIR or not (Path(DATA_DIR) / folder).exists(),
                        reason=f"{folder} not under $SCALL_DATA_DIR",
                    ),
                ],
            )
        )
    return ids


@pytest.mark.parametrize("observation", ["paper", "bounded"])
@pytest.mark.parametrize(("env_id", "kwargs"), _checkable_ids())
def test_checkers_pass_without_warnings(
    env_id: str, kwargs: dict, observation: str, tmp_path: Path
) -> None:
    kwargs = {**kwargs, "observation": observation}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if observation == "paper":  # the authors' state is unbounded, and its Box says so
            infinite = ".*Box observation space m.*value is -?infinity"
            warnings.filterwarnings("ignore", message=infinite)
        gym_check_env(gym.make(env_id, cache_dir=tmp_path, **kwargs).unwrapped)
        sb3_check_env(gym.make(env_id, cache_dir=tmp_path, **kwargs).unwrapped, warn=True)


def test_bounded_observation_stays_in_its_box_through_a_long_adaptive_search(
    tmp_path: Path,
) -> None:
    settings = {"search": "adaptive", "search_steps": 2, "search_max_steps": 6}
    env = ScallEnv(
        **{**TINY, **settings, "search_window": 2, "observation": "bounded"}, cache_dir=tmp_path
    )
    obs, _ = env.reset(seed=0)
    progress, commits = [float(obs[-2])], []
    for i in range(6):  # the ratio swings, so the search runs to search_max_steps
        obs, _, _, _, info = env.step(np.array([0.9 if i % 2 else -0.9, 0.0, 0.0], np.float32))
        assert env.observation_space.contains(obs)
        progress.append(float(obs[-2]))
        commits.append("commit" in info)
    assert commits == [False] * 5 + [True]
    assert progress == pytest.approx([0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 0])
