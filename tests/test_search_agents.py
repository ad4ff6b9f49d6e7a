"""Search agents: each commits its best trial, keeps the env's trial budget, and is seeded."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_agents import TINY_ENV

from agents.baselines import FixedBaseline
from agents.factory import ALGOS, env_overrides, load_agent, load_hyperparams, make_agent
from agents.harness import run_agent
from agents.search_agents import (
    SEARCH_AGENTS,
    CmaEsSearch,
    OptunaSearch,
    RandomSearch,
    SearchAgent,
    UCBBandit,
)
from scall_env.sizing import SizeDecision

ENV_ID = "Scall-Synthetic-v0"
FIXED = {**TINY_ENV, "search_steps": 3}
# adaptive: at least 3 trials, until the best-so-far ratio settles over 2 checks, at most 6
ADAPTIVE = {**FIXED, "search": "adaptive", "search_window": 2, "search_max_steps": 6}
OBS = np.zeros(10, np.float32)
COMMIT: dict[str, Any] = {"commit": {}}  # the info of a step after which the env committed


def run(algo: str, tmp_path: Path, env: dict[str, Any], seed: int = 0, name: str = "run") -> Path:
    """One pass of ``algo`` through the harness; returns its folder."""
    run_agent(
        algo,
        ENV_ID,
        env_kwargs={**env, "cache_dir": str(tmp_path / "cache")},
        hyperparams=load_hyperparams(algo, ENV_ID),
        seed=seed,
        device="cpu",
        run_dir=tmp_path / name,
    )
    return tmp_path / name


def read(run_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First-pass trials and commits of a run, actions parsed."""
    trials = pd.read_csv(run_dir / "trials.csv").query("episode == 0")
    commits = pd.read_csv(run_dir / "segments.csv").query("episode == 0 and segment >= 1")
    trials["action"] = trials["action"].map(json.loads)
    commits["action"] = commits["action"].map(json.loads)
    return trials, commits


def assert_commits_best(trials: pd.DataFrame, commits: pd.DataFrame) -> None:
    """Each commit holds the best-rewarded trial (the first on ties) of the segment before."""
    for commit in commits.itertuples():
        searched = trials[trials["segment"] == commit.segment - 1]
        assert len(searched) == commit.trials
        best = searched.loc[searched["reward"].idxmax()]  # idxmax: the first maximum
        np.testing.assert_array_equal(commit.action, best["action"])


@pytest.mark.parametrize("algo", sorted(SEARCH_AGENTS))
def test_fixed_search_commits_the_best_trial_and_is_seeded(algo: str, tmp_path: Path) -> None:
    trials, commits = read(run(algo, tmp_path, FIXED))
    assert (trials.groupby("segment").size() == 3).all() and (commits["trials"] == 3).all()
    assert list(commits["segment"]) == [1, 2, 3]
    assert_commits_best(trials, commits)
    again, _ = read(run(algo, tmp_path, FIXED, name="again"))
    pd.testing.assert_frame_equal(trials, again)
    if algo != "bandit":  # UCB on a grid has no randomness
        other, _ = read(run(algo, tmp_path, FIXED, seed=1, name="other"))
        assert list(other["action"]) != list(trials["action"])


@pytest.mark.parametrize("algo", sorted(SEARCH_AGENTS))
def test_adaptive_search_stops_on_the_best_so_far_and_commits_it(algo: str, tmp_path: Path) -> None:
    trials, commits = read(run(algo, tmp_path, ADAPTIVE))
    assert commits["trials"].between(3, 6).all()
    assert_commits_best(trials, commits)
    # the stopping rule saw the best ratio among the trials whose outcome the agent knew
    incumbent = [0.0, 0.0, 0.0]
    for _, searched in trials.groupby("segment"):
        for k in range(len(searched)):
            known = searched.iloc[:k]
            best = known.loc[known["reward"].idxmax(), "action"] if k else incumbent
            assert searched["policy_ratio"].iloc[k] == pytest.approx(
                SizeDecision.from_action(np.asarray(best, np.float32)).ratio
            )
        incumbent = searched.loc[searched["reward"].idxmax(), "action"]


def test_search_agents_are_registered_everywhere() -> None:
    for algo, cls in SEARCH_AGENTS.items():
        assert algo in ALGOS and load_hyperparams(algo, ENV_ID) is not None
        assert env_overrides(algo, {}) == {"commit": "best"}
        assert isinstance(make_agent(algo, None, load_hyperparams(algo, ENV_ID), seed=0), cls)


# ----------------------------------------------------------------- the shared search loop
def feed(agent: SearchAgent, rewards: list[float], commit: bool = True) -> list[np.ndarray]:
    """Propose one action per reward, report the rewards; the last one ends the segment."""
    actions = []
    for i, reward in enumerate(rewards):
        actions.append(agent.predict(OBS)[0])
        last = commit and i == len(rewards) - 1
        agent.observe(actions[-1], reward, COMMIT if last else {})
    return actions


@pytest.mark.parametrize("cls", [RandomSearch, OptunaSearch, CmaEsSearch, UCBBandit])
def test_best_so_far_and_incumbent(cls: type[SearchAgent]) -> None:
    agent = cls(seed=0)
    np.testing.assert_array_equal(agent.predict(OBS, deterministic=True)[0], np.zeros(3))
    actions = feed(agent, [1.0, 3.0], commit=False)
    np.testing.assert_array_equal(agent.predict(OBS, deterministic=True)[0], actions[1])
    assert agent.predict(np.zeros((2, 10)), deterministic=True)[0].shape == (2, 3)
    actions += feed(agent, [3.0, 2.0])  # a tie with the earlier trial: the earlier one wins
    np.testing.assert_array_equal(agent.elite[0], actions[1])
    assert agent.segment_trials == []
    np.testing.assert_array_equal(agent.predict(OBS, deterministic=True)[0], actions[1])


def test_random_search_starts_each_segment_with_the_incumbent() -> None:
    agent = RandomSearch(seed=3)
    actions = feed(agent, [0.0, 5.0, 1.0])
    np.testing.assert_array_equal(actions[0], np.zeros(3))
    assert len({a.tobytes() for a in actions}) == 3
    np.testing.assert_array_equal(agent.predict(OBS)[0], actions[1])


def test_optuna_seeds_each_study_with_the_previous_best() -> None:
    agent = OptunaSearch(seed=0, warm_start=2)
    actions = feed(agent, [1.0, 4.0, 2.0, 3.0, 0.0])
    first = agent._study
    next_segment = feed(agent, [0.0, 0.0, 0.0], commit=False)
    assert agent._study is not first  # a fresh study per segment
    np.testing.assert_array_equal(next_segment[0], actions[1])  # the best first
    np.testing.assert_array_equal(next_segment[1], actions[3])
    assert len(agent._study.trials) == 3


def test_cmaes_keeps_one_distribution_and_retries_the_incumbent() -> None:
    agent = CmaEsSearch(seed=0, popsize=4)
    actions = feed(agent, [1.0, 4.0, 2.0, 3.0, 0.0])
    study = agent._study
    next_segment = feed(agent, [0.0, 0.0], commit=False)
    assert agent._study is study
    np.testing.assert_array_equal(next_segment[0], actions[1])
    generations = [t.system_attrs.get("cma:generation") for t in study.trials]
    assert generations.count(None) == 2  # the two re-tried incumbents stay out of CMA-ES


def test_bandit_plays_every_arm_then_ucb_with_carried_statistics() -> None:
    agent = UCBBandit(levels=3, exploration=0.0, discount=0.5)
    assert len(agent.arms) == 27
    np.testing.assert_array_equal(agent.arms[0], np.zeros(3))  # the middle first
    rewards = [1.0] * 27
    rewards[5] = 9.0
    actions = feed(agent, rewards)
    assert {a.tobytes() for a in actions} == {a.tobytes() for a in agent.arms}
    np.testing.assert_allclose(agent.counts, 0.5)  # discounted after the segment
    np.testing.assert_array_equal(agent.predict(OBS)[0], agent.arms[5])  # greedy: best mean
    agent.observe(np.array([0.1, 0.2, 0.3], np.float32), 50.0, {})  # not an arm
    np.testing.assert_allclose(agent.counts, 0.5)


@pytest.mark.parametrize(
    ("algo", "params", "message"),
    [
        ("bandit", {"levels": 0}, "levels must be an integer >= 1, got 0"),
        ("bandit", {"exploration": -1}, "exploration must be a number >= 0, got -1"),
        ("bandit", {"discount": 0}, r"discount must be a number in \(0, 1\], got 0"),
        ("optuna", {"warm_start": 0}, "warm_start must be an integer >= 1, got 0"),
        ("optuna", {"n_startup_trials": -1}, "n_startup_trials must be an integer >= 0"),
        ("cmaes", {"popsize": 3}, "popsize must be an integer >= 4 or null, got 3"),
    ],
)
def test_bad_parameters_are_refused(algo: str, params: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_agent(algo, None, params)
    with pytest.raises(ValueError, match=f"bad hyper-parameters for {algo}"):
        make_agent(algo, None, {"gamma": 0.9})


# ------------------------------------------------------------------------------ persistence
@pytest.mark.parametrize("algo", sorted(SEARCH_AGENTS))
def test_saved_state_comes_back(algo: str, tmp_path: Path) -> None:
    agent = make_agent(algo, None, load_hyperparams(algo, ENV_ID), seed=0)
    feed(agent, [2.0, 5.0, 1.0])
    feed(agent, [1.0, 0.5], commit=False)
    agent.save(tmp_path / "model.json")
    loaded = load_agent(algo, tmp_path / "model.json")
    assert type(loaded) is type(agent) and loaded.params == agent.params
    np.testing.assert_array_equal(loaded.elite, agent.elite)
    np.testing.assert_array_equal(
        loaded.predict(OBS, deterministic=True)[0], agent.predict(OBS, deterministic=True)[0]
    )
    if isinstance(agent, UCBBandit):
        np.testing.assert_array_equal(loaded.counts, agent.counts)
        np.testing.assert_array_equal(loaded.sums, agent.sums)


def test_load_refuses_other_files(tmp_path: Path) -> None:
    FixedBaseline().save(tmp_path / "fixed.json")
    with pytest.raises(ValueError, match="holds the 'fixed' baseline, not a search agent"):
        SearchAgent.load(tmp_path / "fixed.json")
    UCBBandit(levels=2).save(tmp_path / "bandit.json")
    payload = json.loads((tmp_path / "bandit.json").read_text())
    payload["state"]["counts"] = [1.0]
    (tmp_path / "bandit.json").write_text(json.dumps(payload))
    with pytest.raises(ValueError, match="damaged search state.*1 arms for a grid of 8"):
        SearchAgent.load(tmp_path / "bandit.json")
