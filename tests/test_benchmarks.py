"""The benchmark scripts: shared parser, child runner, and that they time the search core itself.

``benchmarks/`` is a folder of scripts, not a package; its scripts import ``_common`` as a
top-level module (they run as ``python benchmarks/<name>.py``), so the folder goes on
``sys.path`` here the same way. Everything runs on tiny synthetic streams.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _tiny import tiny_env

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
if str(BENCHMARKS) not in sys.path:
    sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402
import bench_denormals  # noqa: E402
import bench_env  # noqa: E402
import bench_load  # noqa: E402
import bench_parallel  # noqa: E402
import bench_recsys  # noqa: E402
import bench_reference  # noqa: E402
import bench_run  # noqa: E402
import bench_sizing  # noqa: E402
import bench_step  # noqa: E402
import bench_stream  # noqa: E402

from scall_env.config import EnvConfig  # noqa: E402
from scall_env.search import SearchCore  # noqa: E402
from scall_env.sizing import SizeDecision, UniformSizer  # noqa: E402

TINY = tiny_env(
    dataset="synthetic",
    base_model="mf",
    n_segments=3,
    budget=8,
    max_chunks=3,
    device="cpu",
    use_cache=False,
)
DECISION = [0.3, 0.2, 0.7]


def _error(capsys: pytest.CaptureFixture[str], parse: Any, argv: list[str]) -> str:
    """The message of an argparse error (exit status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


# ------------------------------------------------------------------------------ parser
def test_shared_parser_defaults_and_overrides() -> None:
    args = _common.make_parser(None).parse_args([])
    assert (args.dataset, args.data_dir, args.n_segments, args.k_core) == ("ml-1m", None, 10, 10)
    assert (args.seed, args.device, args.threads, args.json) == (0, "auto", 0, False)
    assert args.omp_wait_policy == "passive"
    parser = _common.make_parser(None, ("seed", "device"), device="cpu")
    args = parser.parse_args(["--seed", "3"])
    assert vars(args) == {"seed": 3, "device": "cpu"}
    assert "(default: cpu)" in parser.format_help()
    with pytest.raises(ValueError, match="unknown options"):
        _common.make_parser(None, ("seed", "nope"))
    with pytest.raises(ValueError, match="absent options"):
        _common.make_parser(None, ("seed",), device="cpu")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threads", "-1"], "argument --threads: must be an integer >= 0, got -1"),
        (["--seed", "x"], "argument --seed: expected an integer, got 'x'"),
        (["--n-segments", "1"], "argument --n-segments: must be an integer >= 2, got 1"),
        (["--dataset", "nope"], "unknown dataset 'nope'"),
        (["--omp-wait-policy", "lazy"], "invalid choice: 'lazy'"),
        (["--device", "nonsense"], "argument --device: invalid device 'nonsense'"),
    ],
)
def test_shared_parser_refuses_with_clear_errors(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert message in _error(capsys, _common.make_parser(None).parse_args, argv)


def test_script_parsers(capsys: pytest.CaptureFixture[str]) -> None:
    args = bench_step.parse_args(["--action", "0.1", "0.2", "0.3", "--models", "mf"])
    assert args.decision == [0.1, 0.2, 0.3] and args.models == ["mf"]
    assert "--segment must lie in [0, 10)" in _error(
        capsys, bench_step.parse_args, ["--segment", "10"]
    )
    message = _error(capsys, bench_step.parse_args, ["--decision", "0", "0.5", "0.5"])
    assert "--decision:" in message and "ratio" in message
    assert "must be an integer >= 1" in _error(capsys, bench_step.parse_args, ["--batches", "0"])
    assert "unknown --env 'nope'" in _error(capsys, bench_env.parse_args, ["--env", "nope"])
    assert bench_env.parse_args(["--env", "all"]).env == list(bench_env.ENV_KWARGS)
    message = _error(capsys, bench_denormals.main, ["--segments", "0"])
    assert "--segments: must be an integer >= 1, got 0" in message
    with pytest.raises(SystemExit) as exit_info:
        bench_reference.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "Example" in out and "--segments" in out and "--omp-wait-policy" in out


@pytest.mark.parametrize(
    ("parse", "argv", "message"),
    [
        (bench_stream.parse_args, ["--repeat", "0"], "--repeat: must be an integer >= 1, got 0"),
        (bench_stream.parse_args, ["--n-segments", "0"], "--n-segments: must be an integer >= 2"),
        (bench_recsys.parse_args, ["--timed-batches", "0"], "--timed-batches: must be an integer"),
        (bench_load.main, ["--repeat", "0"], "--repeat: must be an integer >= 1, got 0"),
        (bench_reference.main, ["--size", "0"], "--size must be a finite number > 0, got 0.0"),
        (bench_denormals.main, ["--env", "Nope-v0"], "unknown --env 'Nope-v0'; choose from"),
        (bench_denormals.main, ["--algo", "sac"], "--algo 'sac' has no sizer of its own"),
        (bench_run.parse_args, ["--env-kwargs", '{"colour": 1}'], "unknown Scall-ML1M-MF-v0 "
         "arguments ['colour']"),
        (bench_run.parse_args, ["--env-kwargs", '{"lr": -1}'], "--env-kwargs: lr must be > 0"),
        (bench_parallel.parse_args, ["--workers", "0"], "--workers: must be an integer >= 1"),
    ],
)  # fmt: skip
def test_every_script_refuses_bad_options_before_any_work(
    parse: Any, argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert message in _error(capsys, parse, argv)


def test_bench_run_exits_1_when_a_run_failed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    report = {"runs": {"Scall-ML1M-MF-v0/scall": {"error": "Traceback\nValueError: boom"}}}
    report |= {"cpus": 2, "cpus_usable": 2, "loadavg_before": [0], "loadavg_after": [0]}
    monkeypatch.setattr(bench_run, "run_benchmark", lambda args: report)
    with pytest.raises(SystemExit) as exit_info:
        bench_run.main([])
    assert exit_info.value.code == 1 and "FAILED: ValueError: boom" in capsys.readouterr().out


def test_bench_sizing_answers_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_sizing.main(["--help"])
    assert exit_info.value.code == 0 and "Time the sizers" in capsys.readouterr().out


# ------------------------------------------------------------------------- child runner
CHILD_SCRIPT = """
import os

def report(mb, fail=False):
    if fail:
        raise RuntimeError("the child failed on purpose")
    block = bytearray(mb * 2**20)
    print("stray output before the result")
    return {"n": len(block), "policy": os.environ.get("OMP_WAIT_POLICY"),
            "threads": os.environ.get("OMP_NUM_THREADS"), "nan": float("nan")}
"""


def _child_function(tmp_path: Path) -> Any:
    import importlib.util

    path = tmp_path / "child_script.py"
    path.write_text(textwrap.dedent(CHILD_SCRIPT))
    spec = importlib.util.spec_from_file_location("child_script", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.report


def test_run_child_returns_json_and_peak_rss(tmp_path: Path) -> None:
    report = _child_function(tmp_path)
    result = _common.run_child(report, {"mb": 64}, env=_common.child_env("active", threads=1))
    value = result.value
    assert value["n"] == 64 * 2**20 and value["policy"] == "ACTIVE" and value["threads"] == "1"
    assert value["nan"] != value["nan"]  # NaN survives the trip
    assert 64 <= result.peak_rss_mb < 1024 and result.wall_s > 0
    with pytest.raises(_common.ChildError, match="the child failed on purpose"):
        _common.run_child(report, {"mb": 1, "fail": True})
    with pytest.raises(ValueError, match="not a module-level function"):
        _common.run_child(lambda: None)
    with pytest.raises(ValueError, match="omp_wait_policy"):
        _common.child_env("lazy")


# ---------------------------------------------------------------------- the search core
@pytest.mark.parametrize("base_model", ["mf", "lightgcn"])
def test_bench_step_times_the_core_trial(base_model: str) -> None:
    config = {**TINY, "base_model": base_model}
    timings = bench_step.trial_timings(config, segment=1, decision=DECISION, repeat=2, seed=5)
    # the same trial on a core that really committed segments 0 and 1
    core = SearchCore(EnvConfig(**config))
    core.start(seed=0)
    core.commit(SizeDecision(0.5, 0.5, 0.5), model_seed=1, train_seed=2)
    expected = [core.trial(SizeDecision(*DECISION), seed=s).fitness for s in (5, 6)]
    assert timings["fitness_all"] == expected
    assert timings["model"] == base_model and len(timings["trial_s_all"]) == 2
    parts = sum(timings[key] for key in ("sizing_s", "model_s", "trial_eval_s"))
    assert 0 < parts < timings["trial_s"] == min(timings["trial_s_all"])
    assert timings["batch_s"] >= 0 and timings["params_used"] <= timings["budget_params"]
    assert timings["sample_s"] > 0 and timings["train_step_s"] > 0
    halves = timings["sample_s"] + timings["train_step_s"]
    assert timings["halves_ratio"] == pytest.approx(timings["batch_s"] / halves)


def test_place_at_segment_refuses_out_of_range() -> None:
    core = SearchCore(EnvConfig(**TINY))
    with pytest.raises(ValueError, match=r"segment 3 is not in \[0, 3\)"):
        _common.place_at_segment(core, 3)
    _common.place_at_segment(core, 2)
    assert core.segment_index == 2 and core.done
    assert core.trial(SizeDecision(*DECISION), seed=0).segment == 2


def test_bench_reference_one_row_per_segment() -> None:
    table = bench_reference.reference_table(TINY, segments=3, seed=4)
    rows = table["segments"]
    assert [row["segment"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert 0 <= row["recall@20"] <= 1 and 0 <= row["ndcg@20"] <= 1
        assert 1 <= row["chunks"] <= TINY["max_chunks"] and row["wall_s"] > 0
        assert row["params_used"] == row["budget_params"] == 8 * (row["users"] + row["items"])
        assert "authors_recall@20" not in row
    core = SearchCore(EnvConfig(**TINY, sizer=UniformSizer()))
    record = core.start(seed=4)
    assert (rows[0]["recall@20"], rows[0]["ndcg@20"]) == (record["recall@20"], record["ndcg@20"])
    with_authors = bench_reference.reference_table(TINY, segments=1, seed=4, authors=True)
    assert with_authors["segments"][0]["authors_recall@20"] == 0.0726
    with pytest.raises(ValueError, match="segments must lie in"):
        bench_reference.reference_table(TINY, segments=4, seed=4)


def test_bench_reference_curves_and_outputs(tmp_path: Path) -> None:
    reports = [
        {"seed": seed, **bench_reference.reference_table(TINY, segments=2, seed=seed)}
        for seed in (1, 2)
    ]
    for report in reports:
        for row in report["segments"]:
            curves = row["chunk_curves"]
            assert [point["chunk"] for point in curves] == list(range(row["chunks"]))
            # the record's metrics are those of its best chunk
            assert curves[row["best_chunk"]]["recall@20"] == pytest.approx(row["recall@20"])
            assert curves[row["best_chunk"]]["ndcg@20"] == pytest.approx(row["ndcg@20"])
    table = bench_reference.write_outputs(reports, tmp_path)
    assert (tmp_path / "curves.png").stat().st_size > 0
    written = pd.read_csv(tmp_path / "chunks.csv")
    assert (
        len(written)
        == len(table)
        == sum(row["chunks"] for report in reports for row in report["segments"])
    )
    assert set(written.columns) >= {"seed", "segment", "chunk", "recall@20", "ndcg@20", "loss"}
    summary = bench_reference._seed_summary(reports)
    assert [row["segment"] for row in summary] == [0, 1]
    mean = np.mean([report["segments"][0]["recall@20"] for report in reports])
    assert summary[0]["recall@20_mean"] == pytest.approx(mean)


def test_bench_env_through_gym_make() -> None:
    result = bench_env.bench_env("Scall-Synthetic-v0", steps=6, seed=0, data_dir=None)
    assert result["env"] == "Scall-Synthetic-v0" and result["base_model"] == "mf"
    assert result["search"] == "fixed" and result["n_segments"] == 5
    # random actions, yet the segment commits after search_steps trials: a commit step is timed
    assert [commit["step"] for commit in result["commit_steps"]] == [result["search_steps"] - 1]
    assert result["search_step_n"] == 5
    assert result["first_step_s"] > 0 and "peak_rss_mb" not in result  # the runner adds it


def test_bench_denormals_compares_the_two_modes(tmp_path: Path) -> None:
    reports = {
        flush: bench_denormals.commits(
            "Scall-Synthetic-v0", "frequency", 1, flush, None, 0, str(tmp_path)
        )
        for flush in (True, False)
    }
    for report in reports.values():
        assert len(report["commit_s"]) == len(report["metrics"]) == 1
        assert report["commits_s"] > 0 and report["denormal_share"] == [0.0]  # MF: no propagation
    assert reports[True]["weights_sha256"] == reports[False]["weights_sha256"]
    same = bench_denormals._max_abs_diff(tmp_path / "True-0.npz", tmp_path / "False-0.npz")
    assert same == 0.0
    np.savez(
        tmp_path / "other.npz", **{k: v + 1 for k, v in np.load(tmp_path / "True-0.npz").items()}
    )
    other = bench_denormals._max_abs_diff(tmp_path / "True-0.npz", tmp_path / "other.npz")
    assert other == pytest.approx(1.0, rel=1e-5)
