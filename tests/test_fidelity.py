"""The authors' protocol details, each checked against an independent expectation."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from _tiny import tiny_env

from agents.scall import RecencyReplayBuffer, ScallSAC
from scall_env.env import ScallEnv
from scall_env.observation import paper_pooled_frequencies
from scall_env.recsys import Evaluator, MaskedEmbedding, TrainConfig, make_model
from scall_env.recsys.training import train_to_convergence
from scall_env.segment import Segment
from scall_env.sizing import DistributionSizer, SizeDecision, get_distribution

TINY = tiny_env(
    dataset="synthetic",
    base_model="mf",
    n_segments=3,
    budget=8,
    n_groups=8,
    search_steps=3,
    search_max_steps=9,
    max_chunks=2,
    device="cpu",
)


def make_env(tmp_path: Path, **kwargs: Any) -> ScallEnv:
    return ScallEnv(**{**TINY, "cache_dir": tmp_path, **kwargs})


def scripted(ratios: list[float]) -> Any:
    """A commit policy whose deterministic ratio follows ``ratios`` (then repeats the last)."""
    calls = iter(ratios)
    last = [ratios[-1]]

    def policy(obs: np.ndarray) -> np.ndarray:
        last[0] = next(calls, last[0])
        return np.array([2 * last[0] - 1, 0.0, 0.0], dtype=np.float32)

    return policy


def trials_per_segment(env: ScallEnv) -> list[int]:
    env.reset(seed=0)
    done = False
    while not done:
        _, _, done, _, _ = env.step(np.zeros(3, dtype=np.float32))
    return [record["trials"] for record in env.committed[1:]]


def test_constant_policy_ratio_stops_at_search_steps(tmp_path: Path) -> None:
    env = make_env(tmp_path, search_window=2, commit_policy=scripted([0.3]))
    assert trials_per_segment(env) == [3, 3]


def test_oscillating_policy_ratio_runs_to_the_cap(tmp_path: Path) -> None:
    policy = scripted([0.3, 0.5] * 100)  # moves by 0.2 > 0.01 every step
    env = make_env(tmp_path, commit_policy=policy)
    assert trials_per_segment(env) == [9, 9]


def test_policy_ratio_settling_late_stops_when_the_window_is_flat(tmp_path: Path) -> None:
    # trials 1-4 move, then constant: the last 5 values are first flat after trial 9
    ratios = [0.1, 0.4, 0.1, 0.4] + [0.6] * 100
    env = make_env(tmp_path, search_max_steps=20, commit_policy=scripted(ratios))
    env.reset(seed=0)
    infos = [env.step(np.zeros(3, dtype=np.float32))[-1] for _ in range(9)]
    assert [("commit" in info) for info in infos] == [False] * 8 + [True]
    assert infos[-1]["commit"]["trials"] == 9
    assert infos[-1]["policy_ratio"] == pytest.approx(0.6, abs=1e-6)


def test_fixed_search_ignores_the_policy_ratio(tmp_path: Path) -> None:
    env = make_env(tmp_path, search="fixed", commit_policy=scripted([0.3, 0.5] * 50))
    assert trials_per_segment(env) == [3, 3]


def test_paper_pooling_windows_and_trailing_zeros() -> None:
    # 5 entities, 4 groups: windows of ceil(5/4) = 2 -> 3 groups, the 4th is 0
    pooled = paper_pooled_frequencies(np.array([4, 0, 2, 8, 6]), 4)
    np.testing.assert_allclose(pooled, [(1.0 + 0.75) / 2, (0.5 + 0.25) / 2, 0.0, 0.0])
    np.testing.assert_allclose(paper_pooled_frequencies(np.array([3, 3, 3]), 2), [1.0, 1.0])


def test_paper_observation_contents(tmp_path: Path) -> None:
    env = make_env(tmp_path, search="fixed")
    obs, _ = env.reset(seed=0)
    g, d = 8, 16
    assert obs.shape == (2 * g + 2 * d + 4,) and env.observation_space.contains(obs)
    segment = env.stream.segment(0)
    np.testing.assert_allclose(obs[:g], paper_pooled_frequencies(segment.user_freq, g))
    assert obs[2 * g] == 0.5  # the fitness ratio before any trial
    assert obs[2 * g + 1] == pytest.approx(segment.n_users / (segment.n_users + segment.n_items))
    assert np.all(obs[-2:] == 0.0)
    action = np.array([0.4, -0.6, 0.2], dtype=np.float32)
    obs, reward, _, _, info = env.step(action)
    assert obs[2 * g] == pytest.approx(info["fitness"] / info["reference_fitness"], rel=1e-6)
    assert reward == pytest.approx(10 * (obs[2 * g] - 0.9) / 0.2, rel=1e-5)
    # the unclipped sizes: shares of the side budget (ratio * budget), spread over 255 -> d - 1
    decision = SizeDecision.from_action(action)
    budget = info["budget_params"]
    user_side = decision.ratio * budget
    shares = get_distribution("powerlaw").shares(decision.alpha_user, segment.n_users)
    assert obs[-2] == pytest.approx((shares[0] - shares[-1]) * user_side / (d - 1), rel=1e-5)
    # the mean embeddings are the last trial model's, raw: they differ from the committed ones
    committed_user_mean = env.core.model.user_table().mean(0).detach().numpy()
    trial_user_mean = obs[2 * g + 2 : 2 * g + 2 + d]
    assert not np.allclose(trial_user_mean[: committed_user_mean.size], committed_user_mean)


def test_paper_trial_sizes_are_uncorrected_and_never_over_budget() -> None:
    sizer = DistributionSizer()
    rng = np.random.default_rng(0)
    user_freq, item_freq = rng.integers(0, 50, 300), rng.integers(0, 50, 200)
    budget = 32 * 500
    lopsided = SizeDecision(0.99, 0.99, 0.99)  # users ask for 15840 parameters, at most 32 each
    exact = sizer.sizes(lopsided, user_freq, item_freq, budget, d_max=32)
    paper = sizer.sizes(lopsided, user_freq, item_freq, budget, d_max=32, exact=False)
    assert exact.params_used == budget  # the users' excess moves to the items
    assert paper.params_used < budget  # capped at d_max, not renormalised
    user_side = 0.99 * budget
    shares = get_distribution("powerlaw").shares(0.99, 300) * user_side
    expected = np.minimum(np.rint(np.maximum(shares, 1)), 32)
    np.testing.assert_array_equal(np.sort(paper.user_sizes)[::-1], expected)
    # many shares below 1 raised to 1 would overrun a tight budget: exact sizes instead
    tight = sizer.sizes(SizeDecision(0.5, 1e-6, 1e-6), user_freq, item_freq, 600, exact=False)
    assert tight.params_used == 600


def test_trials_use_uncorrected_sizes_and_commits_exact_ones(tmp_path: Path) -> None:
    env = make_env(tmp_path, search="fixed", budget=14)
    env.reset(seed=0)
    skewed = np.array([0.98, 0.98, 0.98], dtype=np.float32)  # lopsided: users hit d_max
    _, _, _, _, info = env.step(skewed)
    assert info["params_used"] < info["budget_params"]
    env.step(skewed)
    _, _, _, _, info = env.step(skewed)
    assert info["commit"]["params_used"] == info["commit"]["budget_params"]


def test_exact_trial_sizing_option_spends_the_budget(tmp_path: Path) -> None:
    env = make_env(tmp_path, search="fixed", budget=14, trial_sizing="exact")
    env.reset(seed=0)
    _, _, _, _, info = env.step(np.array([0.98, 0.98, 0.98], dtype=np.float32))
    assert info["params_used"] == info["budget_params"]


def test_warm_start_columns_between_old_and_new_size_start_at_zero() -> None:
    old = MaskedEmbedding(np.array([2, 4]), d_max=8, generator=torch.Generator().manual_seed(0))
    new = MaskedEmbedding(np.array([5, 1, 3]), d_max=8, generator=torch.Generator().manual_seed(1))
    fresh_row = new.weight[2].detach().clone()
    new.warm_start(old)
    table = new.full_weight()
    np.testing.assert_array_equal(table[0, :2], old.full_weight()[0, :2])
    assert torch.all(table[0, 2:5] == 0)  # grown from 2 to 5: zeros, not fresh noise
    np.testing.assert_array_equal(table[1, :1], old.full_weight()[1, :1])  # shrunk to 1
    assert torch.all(table[1, 1:] == 0)
    np.testing.assert_array_equal(new.weight[2].detach(), fresh_row)  # new entity: untouched


def _csr(rows: list[int], cols: list[int], shape: tuple[int, int]) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=shape)


def test_evaluation_counts_users_without_candidates_as_zero() -> None:
    # users 0, 1 known; user 1's only test item is unknown, so it scores 0 but still counts
    shape = (2, 3)
    train = _csr([0, 0, 1], [0, 1, 2], shape)
    segment = Segment(
        index=0,
        n_users=2,
        n_items=3,
        train_graph=train,
        current=train,
        test=_csr([0], [2], shape),
        test_users=np.array([0, 1]),
        candidate_items=np.array([1, 2]),  # item 1 from a new user's test row
        active_users=np.array([0, 1]),
        active_items=np.array([0, 1, 2]),
        user_freq=np.array([2, 1]),
        item_freq=np.array([1, 1, 1]),
        n_train=3,
        n_replay=0,
    )
    user = torch.tensor([[1.0], [1.0]])
    item = torch.tensor([[0.0], [0.0], [1.0]])  # item 2 ranks first for user 0
    metrics = Evaluator(segment, device="cpu").evaluate_embeddings(user, item)
    assert metrics["recall@20"] == pytest.approx((1.0 + 0.0) / 2)
    assert metrics["ndcg@20"] == pytest.approx((1.0 + 0.0) / 2)


def test_stream_evaluation_set_follows_the_authors(tmp_path: Path) -> None:
    env = make_env(tmp_path)
    stream = env.stream
    for segment in stream:
        start, end = stream.bounds[segment.index], stream.bounds[segment.index + 1]
        own_train = segment.n_train - segment.n_replay
        users, items = stream.users[start + own_train : end], stream.items[start + own_train : end]
        np.testing.assert_array_equal(segment.test_users, np.unique(users[users < segment.n_users]))
        np.testing.assert_array_equal(
            segment.candidate_items, np.unique(items[items < segment.n_items])
        )


def test_convergence_accepts_ties(segment: Segment, monkeypatch: pytest.MonkeyPatch) -> None:
    model = make_model("mf", segment, np.full(segment.n_users, 4), np.full(segment.n_items, 4))
    monkeypatch.setattr(Evaluator, "evaluate", lambda self, m: {"fitness": 0.5})
    config = TrainConfig(batch_size=16, chunk_batches=2, max_chunks=6, min_loss_drop=math.inf)
    result = train_to_convergence(
        model, segment, config, evaluator=Evaluator(segment, device="cpu")
    )
    assert result.best_chunk == 5 and not result.converged  # every tie became the best


def test_scall_sac_follows_the_authors(tmp_path: Path) -> None:
    env = make_env(tmp_path, search="fixed")
    agent = ScallSAC(env=env, seed=0, device="cpu")
    assert agent.learning_starts == 0
    buffer = RecencyReplayBuffer(100, env.observation_space, env.action_space, device="cpu")
    obs = np.zeros(env.observation_space.shape, dtype=np.float32)
    for i in range(13):
        buffer.add(obs, obs, np.zeros(3), np.array([i]), np.array([False]), [{}])
        expected = 1 if buffer.size() <= 12 else min(8, buffer.size())
        batch = buffer.sample(8)
        assert batch.rewards.shape[0] == expected
    batch = buffer.sample(8)
    assert len(set(batch.rewards.flatten().tolist())) == 8  # drawn without replacement
