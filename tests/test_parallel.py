"""Backends give the same tables; baselines commit without wasted trials; the env's state saves.

The backend test runs one small comparison (2 agents x 2 seeds on a shrunk synthetic stream)
serially, in 2 local processes and on a local 2-CPU Ray cluster, and compares the tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from test_resume import ENV, comparison

import scall_env  # noqa: F401  (registers the environment ids)
from agents.factory import load_hyperparams
from agents.harness import run_agent
from agents.parallel import run_units
from scall_cli import compare
from scall_env.config import EnvConfig
from scall_env.search import constant_policy_trials

GOLDEN = Path(__file__).parent / "data" / "golden"
TINY: dict[str, Any] = {**ENV, "n_segments": 4, "device": "cpu"}


def _double(unit: int, progress: Any) -> int:
    progress(f"unit {unit}")
    if unit < 0:
        raise ValueError(f"negative unit {unit}")
    return 2 * unit


# ------------------------------------------------------------------------------ backends
def test_backends_give_the_same_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = comparison(tmp_path, TINY, workers=2)
    tables = {}
    try:  # Ray is an extra: without it the other two backends are still compared
        import ray  # noqa: F401

        backends = ("serial", "process", "ray")
    except ImportError:
        backends = ("serial", "process")
    for backend in backends:
        out = tmp_path / backend
        argv = ["--config", str(config), "--output", str(out), "--backend", backend]
        assert compare.main([*argv, "--no-progress"]) == 0
        printed = capsys.readouterr().out
        # live progress: a line per committed segment of every run, as it happens
        for run in ("scall/seed0", "scall/seed1", "uniform/seed0", "uniform/seed1"):
            assert f"{run}: segment 3 recall@20 " in printed, (backend, printed)
        frames = [pd.read_csv(out / name) for name in ("summary.csv", "segments.csv")]
        tables[backend] = [  # the same but for the wall times
            frame.drop(columns=[c for c in frame if c.startswith("wall_time_s")])
            for frame in frames
        ]
        segments = tables[backend][1]
        assert (segments.loc[segments["agent"] == "uniform", "trials"] == 0).all()
        assert (
            segments.loc[(segments["agent"] == "scall") & (segments["segment"] > 0)].trials > 0
        ).all()
    for backend in backends[1:]:
        for found, expected in zip(tables[backend], tables["serial"], strict=True):
            pd.testing.assert_frame_equal(found, expected)


def test_a_failing_unit_raises_its_own_error() -> None:
    """(Order and progress: the backend test above.) One worker process: spawning is costly."""
    lines: list[str] = []
    with pytest.raises(ValueError, match="negative unit -1"):
        run_units(
            _double, [1, -1, 2], names=["a", "b", "c"], backend="process", report=lines.append
        )
    assert lines[:2] == ["unit 1", "unit -1"]
    with pytest.raises(ValueError, match="unknown backend 'dask'; choose from serial, process"):
        run_units(_double, [1], names=["a"], backend="dask")


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ({"backend": "dask"}, "backend must be one of serial, process, ray"),
        ({"workers": 0}, "workers must be an integer >= 1"),
        ({"threads_per_worker": "2"}, "threads_per_worker must be an integer >= 1"),
        ({"baseline_trials": "yes"}, "baseline_trials must be true or false"),
    ],
)
def test_bad_backend_settings_are_refused(entries: dict[str, Any], message: str) -> None:
    config = {"env": "Scall-Synthetic-v0", "agents": ["uniform"], "seeds": [0], **entries}
    with pytest.raises(ValueError, match=message):
        compare.check_config(config)


# ----------------------------------------------------------------- baselines without trials
@pytest.mark.parametrize("algo", ["uniform", "frequency"])
def test_commit_only_baselines_commit_the_golden_segments(algo: str, tmp_path: Path) -> None:
    """Without trials, uniform and frequency commit exactly what the protocol commits."""
    run_agent(
        algo,
        "Scall-Synthetic-v0",
        env_kwargs={"cache_dir": tmp_path / "cache"},
        hyperparams=load_hyperparams(algo, "Scall-Synthetic-v0"),
        seed=0,
        device="cpu",
        run_dir=tmp_path,
        commit_only=True,
    )
    found = pd.read_csv(tmp_path / "segments.csv")
    expected = pd.read_csv(GOLDEN / algo / "segments.csv")
    assert (found["trials"] == 0).all()
    pd.testing.assert_frame_equal(found.drop(columns="trials"), expected.drop(columns="trials"))
    trials = pd.read_csv(tmp_path / "trials.csv")
    assert trials.empty and {"step", "reward", "fitness"} <= set(trials)


def test_commit_only_fixed_baseline_equals_the_one_that_searches(tmp_path: Path) -> None:
    frames = []
    for commit_only in (False, True):
        out = tmp_path / str(commit_only)
        run_agent("fixed", "Scall-Synthetic-v0", env_kwargs=TINY, hyperparams={
            "action": [0.4, -0.2, 0.6]}, run_dir=out, commit_only=commit_only)  # fmt: skip
        frames.append(pd.read_csv(out / "segments.csv").drop(columns="trials"))
    pd.testing.assert_frame_equal(*frames)


def test_constant_policy_trials_follows_the_stopping_rule() -> None:
    assert constant_policy_trials(EnvConfig(search="fixed", search_steps=7)) == 7
    assert constant_policy_trials(EnvConfig(search_steps=3, search_window=5)) == 5
    assert constant_policy_trials(EnvConfig(search_steps=11, search_window=5)) == 11
    assert constant_policy_trials(EnvConfig(search_steps=3, search_max_steps=4)) == 4


def test_skip_search_needs_a_fresh_segment_and_an_action() -> None:
    env = gym.make("Scall-Synthetic-v0", **TINY, use_cache=False)
    env.reset(seed=0)
    with pytest.raises(RuntimeError, match="skip_search needs an action or policy"):
        env.unwrapped.advance(skip_search=True)
    env.step(np.zeros(3, dtype=np.float32))
    with pytest.raises(RuntimeError, match=r"no trials \(1 ran\)"):
        env.unwrapped.advance(np.zeros(3), skip_search=True)


# ------------------------------------------------------------------------------ env state
def test_env_state_restores_the_episode_exactly() -> None:
    """A second env restored from ``get_state`` mid-search continues step for step alike."""
    make = lambda: gym.make("Scall-Synthetic-v0", **TINY, use_cache=False)  # noqa: E731
    actions = np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32)
    env = make()
    env.reset(seed=4)
    for action in actions[:3]:
        env.step(action)
    twin = make()
    obs, info = twin.reset(options={"state": env.unwrapped.get_state()})
    assert info == {} and twin.unwrapped.segment_index == env.unwrapped.segment_index
    for action in actions[3:]:
        a, b = env.step(action), twin.step(action)
        np.testing.assert_array_equal(a[0], b[0])
        assert a[1:4] == b[1:4] and a[4] == b[4]
