"""The speed benchmarks of issue 11: the LightGCN floor beside the trials, and bench_run's passes.

Everything runs on tiny synthetic streams; importing ``test_benchmarks`` puts the scripts' folder
on ``sys.path``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_benchmarks import TINY as MF_TINY  # also puts benchmarks/ on sys.path

# isort: split
import _common
import _trials
import bench_run
import bench_step

from scall_env.config import EnvConfig
from scall_env.search import SearchCore
from scall_env.sizing import SizeDecision

TINY = {**MF_TINY, "base_model": "lightgcn", "trial_batches": 4, "max_chunks": 2}
"""A tiny LightGCN setting for the trial timings."""

TINY_ENV = {
    "dataset_options": MF_TINY["dataset_options"],
    "n_segments": 3,
    "trial_batches": 3,
    "batch_size": 128,
    "max_chunks": 2,
    "search": "fixed",
    "search_steps": 2,
}
"""``gym.make`` keywords that shrink ``Scall-Synthetic-v0`` for a pass in a few seconds."""


def test_floor_seconds_times_the_trial_model() -> None:
    core = SearchCore(EnvConfig(**TINY))
    _common.place_at_segment(core, 1)
    segment = core.segment(1)
    model = core.new_model(segment, core.sizes(SizeDecision(*_trials.SKEWED), segment), seed=0)
    before = model.state_dict()
    seconds = _trials.floor_seconds(model, repeats=3)
    assert len(seconds) == 3 and all(s > 0 for s in seconds)
    after = model.state_dict()  # the floor trains nothing
    assert all(after[key].equal(value) for key, value in before.items())


def test_trial_timings_report_the_three_actions_and_the_floor() -> None:
    timings = bench_step.trial_timings(
        TINY, segment=1, decision=[0.4, 0.3, 0.6], repeat=1, seed=2, random_actions=2,
        floor_repeats=4,
    )  # fmt: skip
    assert len(timings["floor_s_all"]) == 4 and timings["floor_s"] > 0
    assert timings["floor_ratio"] == pytest.approx(timings["batch_s"] / timings["floor_s"])
    assert timings["floor_ratio_skewed"] == pytest.approx(
        timings["batch_skewed_s"] / timings["floor_skewed_s"]
    )
    assert timings["trial_skewed_s"] > 0 and len(timings["trial_random_s_all"]) == 2
    assert timings["trial_random_s"] == pytest.approx(sum(timings["trial_random_s_all"]) / 2)
    assert timings["size_max_skewed"] <= TINY["d_max"]
    mf = bench_step.trial_timings(
        {**TINY, "base_model": "mf"}, segment=1, decision=[0.4, 0.3, 0.6], repeat=1, seed=2,
        random_actions=0, floor_repeats=2,
    )  # fmt: skip
    assert "floor_s" not in mf and mf["trial_random_s"] is None and mf["trial_skewed_s"] > 0


def test_bench_step_options() -> None:
    args = bench_step.parse_args(["--random-actions", "0", "--floor-repeats", "2"])
    assert (args.random_actions, args.floor_repeats) == (0, 2)
    assert bench_step.TARGETS["lightgcn_floor_ratio"] == 1.5
    assert bench_step.TARGETS["mf_trial_s"] == 1.0


def test_bench_run_times_a_prefix_and_a_whole_pass(tmp_path: Path) -> None:
    prefix = bench_run.time_pass(
        "Scall-Synthetic-v0", "uniform", segments=1, env_kwargs=TINY_ENV, cache_dir=str(tmp_path)
    )
    assert (prefix["complete"], prefix["segments"], prefix["trials_per_segment"]) == (False, 1, [2])
    assert 0 < prefix["segment0_s"] == prefix["commit_at_s"][0] < prefix["pass_s"]
    whole = bench_run.time_pass("Scall-Synthetic-v0", "scall", env_kwargs=TINY_ENV)
    assert whole["complete"] and whole["segments"] == 2 and whole["trials"] == 4
    assert whole["commit_at_s"] == sorted(whole["commit_at_s"]) and "target_s" not in whole
    direct = bench_run.time_pass(
        "Scall-Synthetic-v0", "uniform", env_kwargs=TINY_ENV, commit_only=True
    )
    assert direct["complete"] and direct["commit_only"] and direct["segments"] == 2


def test_bench_run_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    args = bench_run.parse_args(
        ["--env", "Scall-Synthetic-v0", "--algo", "uniform", "--segments", "1",
         "--env-kwargs", '{"n_segments": 3, "trial_batches": 3, "search": "fixed", '
         '"search_steps": 2, "max_chunks": 2}']
    )  # fmt: skip
    assert args.device == "cpu" and args.env == ["Scall-Synthetic-v0"]
    report = bench_run.run_benchmark(args)
    run = report["runs"]["Scall-Synthetic-v0/uniform"]
    assert run["segments"] == 1 and run["pass_s"] > 0 and run["peak_rss_mb"] > 0
    bench_run.print_table(report)
    assert "Scall-Synthetic-v0/uniform" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        bench_run.parse_args(["--env-kwargs", "[1]"])
    assert exit_info.value.code == 2 and "expected a JSON object" in capsys.readouterr().err
    assert bench_run.TARGETS[("Scall-ML1M-MF-v0", "scall")] == 120.0
