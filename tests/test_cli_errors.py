"""Ordinary command-line mistakes: exit status 2, one line naming the input, no folder left.

Every command line's ``main`` runs in-process in an empty working folder; each case checks the
exit status, that stderr is a single line holding the offending input, and that no file or
folder appeared (no empty run folder, no cache folder).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from _tiny import TINY_DATA

import scall_cli._args
from scall_cli import compare, stream_stats, train

Main = Callable[[list[str] | None], int]
SYNTHETIC = ["--env", "Scall-Synthetic-v0"]
# Small enough that a case which gets as far as building the env stays fast.
TINY = json.dumps({"n_segments": 3, "dataset_options": TINY_DATA})
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding a malformed YAML file, a YAML list and a plain file.

    The caches live beside it: a case that gets as far as building the stream may cache it.
    """
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("SCALL_CACHE_DIR", str(tmp_path / "cache"))
    (work / "malformed.yaml").write_text("agents: [uniform\nseeds: {0\n")
    (work / "listing.yaml").write_text("- uniform\n- sac\n")
    (work / "plain_file").write_text("not a folder\n")
    return work


def fails_cleanly(
    main: Main, argv: list[str], names: list[str], workdir: Path, capsys: pytest.CaptureFixture
) -> str:
    """Run ``main(argv)``; assert exit 2, one stderr line holding every name, nothing created."""
    before = sorted(workdir.rglob("*"))
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert sorted(workdir.rglob("*")) == before, "a folder or file was left behind"
    return lines[0]


def read_only(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make ``folder`` look read-only to the output checks.

    Tests may run as root, for whom chmod does not stop writes, so ``os.access`` (what the
    check asks) answers "no" for that folder instead.
    """
    real = os.access

    def access(path: str | os.PathLike, mode: int) -> bool:
        return False if Path(path).resolve() == folder.resolve() else real(path, mode)

    monkeypatch.setattr(scall_cli._args.os, "access", access)


# ---------------------------------------------------------------------------- scall-train
TRAIN_CASES = [
    (["--config", "malformed.yaml"], ["malformed.yaml", "not valid YAML", "line"]),
    (["--config", "listing.yaml"], ["listing.yaml", "must map section names"]),
    (["--config", "plain_file/x.yaml"], ["plain_file/x.yaml", "does not exist"]),
    (["--seed", "-1"], ["--seed", "-1", "integer >= 0"]),
    (["--seed", "one"], ["--seed", "'one'"]),
    (["--total-timesteps", "many"], ["--total-timesteps", "'many'"]),
    (["--save-path", "plain_file"], ["--save-path", "plain_file", "is a file"]),
    (["--save-path", "plain_file/run"], ["--save-path", "plain_file/run", "is a file"]),
    (["--tensorboard-log", "plain_file"], ["--tensorboard-log", "plain_file"]),
    (["--env", "Nope-v0"], ["Nope-v0", "registered"]),
    (["--env-kwargs", "{budget: 3}"], ["--env-kwargs", "not valid JSON"]),
    (["--env-kwargs", '{"budget": "lots"}'], ["budget", "'lots'"]),
    (["--env-kwargs", '{"colour": 1}'], ["colour", "allowed"]),
    (["--hyperparams", "[1]"], ["--hyperparams", "JSON object"]),
    (["--algo", "sac", "--hyperparams", '{"bogus": 1}'], ["sac", "bogus"]),
    (["--algo", "sac", "--hyperparams", '{"learning_rate": "abc"}'], ["sac", "learning rate"]),
    (["--algo", "fixed", "--hyperparams", '{"action": [0, 0, 2]}'], ["fixed action", "[0, 0, 2]"]),
    (["--env-kwargs", json.dumps({**json.loads(TINY), "lr": 1e30})], ["diverged", "lower lr"]),
    (["--env-kwargs", json.dumps({**json.loads(TINY), "n_segments": 1})], ["1 segment(s)"]),
    (["--total-timesteps", "1"], ["counts as 5 steps", "of 5, got 1", "--baseline-trials"]),
]


@pytest.mark.parametrize(("extra", "names"), TRAIN_CASES)
def test_train_mistakes(
    extra: list[str], names: list[str], workdir: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--algo", "uniform", *SYNTHETIC, "--env-kwargs", TINY, "--no-progress", *extra]
    fails_cleanly(train.main, argv, names, workdir, capsys)


@NO_CUDA
def test_train_cuda_without_cuda(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--algo", "uniform", *SYNTHETIC, "--device", "cuda"]
    fails_cleanly(train.main, argv, ["'cuda'", "CUDA"], workdir, capsys)


def test_train_read_only_output(
    workdir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "locked").mkdir()
    read_only(monkeypatch, workdir / "locked")
    argv = ["--algo", "uniform", *SYNTHETIC, "--save-path", "locked/run"]
    fails_cleanly(train.main, argv, ["--save-path", "locked/run", "not writable"], workdir, capsys)


# -------------------------------------------------------------------------- scall-compare
def config_file(workdir: Path, **entries: object) -> str:
    """A comparison YAML (JSON is YAML) with the tiny synthetic env and ``entries``."""
    base = {"env": "Scall-Synthetic-v0", "env_kwargs": json.loads(TINY), "agents": ["uniform"]}
    (workdir / "compare.yaml").write_text(json.dumps({**base, **entries}))
    return "compare.yaml"


COMPARE_CASES = [
    (["--config", "malformed.yaml"], {}, ["malformed.yaml", "not valid YAML", "line"]),
    (["--config", "listing.yaml"], {}, ["listing.yaml", "YAML mapping"]),
    (["--seeds", "-1"], {}, ["--seeds", "-1"]),
    (["--seeds", "first"], {}, ["--seeds", "'first'"]),
    ([], {"seeds": [-1]}, ["seeds", "[-1]", "integers >= 0"]),
    ([], {"seeds": [0, 0]}, ["seeds", "more than once"]),
    (["--agents", "uniform", "uniform"], {}, ["agents", "'uniform'", "more than once"]),
    ([], {"budgets": [4, 4.0]}, ["budgets", "more than once"]),
    (["--budgets", "big"], {}, ["--budgets", "'big'"]),
    ([], {"budgets": ["big"]}, ["budgets", "'big'"]),
    ([], {"total_timesteps": "many"}, ["total_timesteps", "'many'"]),
    ([], {"hyperparams": {"sac": [1]}}, ["hyperparams", "'sac'"]),
    ([], {"env_kwargs": [1]}, ["env_kwargs", "[1]"]),
    (["--output", "plain_file"], {}, ["--output", "plain_file", "is a file"]),
    (["--env", "Nope-v0"], {}, ["Nope-v0", "registered"]),
    (["--env-kwargs", "{budget: 3}"], {}, ["--env-kwargs", "not valid JSON"]),
    (["--env-kwargs", '{"budget": -2}'], {}, ["budget", "-2"]),
    (["--agents", "sac"], {"hyperparams": {"sac": {"bogus": 1}}}, ["sac", "bogus"]),
]


@pytest.mark.parametrize(("extra", "entries", "names"), COMPARE_CASES)
def test_compare_mistakes(
    extra: list[str],
    entries: dict[str, object],
    names: list[str],
    workdir: Path,
    capsys: pytest.CaptureFixture,
) -> None:
    # a later --config in ``extra`` replaces the generated one
    argv = ["--config", config_file(workdir, output="out", **entries), "--no-progress", *extra]
    fails_cleanly(compare.main, argv, names, workdir, capsys)


@NO_CUDA
def test_compare_cuda_without_cuda(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["--config", config_file(workdir, output="out"), "--device", "cuda"]
    fails_cleanly(compare.main, argv, ["'cuda'", "CUDA"], workdir, capsys)


def test_compare_read_only_output(
    workdir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "locked").mkdir()
    read_only(monkeypatch, workdir / "locked")
    argv = ["--config", config_file(workdir, output="locked/out")]
    fails_cleanly(compare.main, argv, ["--output", "locked/out", "not writable"], workdir, capsys)


# --------------------------------------------------------------------- scall-stream-stats
STREAM_CASES = [
    (["--seed", "-1"], ["--seed", "-1"]),
    (["--seed", "x"], ["--seed", "'x'"]),
    (["--k-core", "ten"], ["--k-core", "'ten'"]),
    (["--n-segments", "2.5"], ["--n-segments", "'2.5'"]),
    (["--time-window", "soon", "--segmentation", "time"], ["--time-window", "'soon'"]),
    (["--replay-ratio", "nan"], ["replay_ratio", "nan"]),
    (["--option", "n_users=many"], ["n_users", "'many'"]),
    (["--option", "colour=red"], ["colour"]),
    (["--dataset", "movies"], ["--dataset", "'movies'"]),
    (["--cache-dir", "plain_file"], ["--cache-dir", "plain_file", "is a file"]),
    (["--cache-dir", "plain_file/cache"], ["--cache-dir", "plain_file/cache", "is a file"]),
]


@pytest.mark.parametrize(("extra", "names"), STREAM_CASES)
def test_stream_stats_mistakes(
    extra: list[str], names: list[str], workdir: Path, capsys: pytest.CaptureFixture
) -> None:
    argv = ["--dataset", "synthetic", "--cache-dir", "cache", *extra]
    fails_cleanly(stream_stats.main, argv, names, workdir, capsys)


def test_stream_stats_read_only_cache(
    workdir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "locked").mkdir()
    read_only(monkeypatch, workdir / "locked")
    argv = ["--dataset", "synthetic", "--cache-dir", "locked/cache"]
    fails_cleanly(stream_stats.main, argv, ["--cache-dir", "not writable"], workdir, capsys)
