"""scall_cli.stream_stats (scall-stream-stats, scripts/stream_stats.py): JSON, options, errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path
from typing import NamedTuple

import pytest

import scall_cli.stream_stats as stream_stats

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stream_stats.py"


class Outcome(NamedTuple):
    """Exit status and captured output of one in-process ``main`` call."""

    returncode: int
    stdout: str
    stderr: str


Runner = Callable[..., Outcome]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Runner:
    """Call :func:`scall_cli.stream_stats.main` with ``--cache-dir``; argparse exits are caught."""

    def call(*args: str, cache: Path) -> Outcome:
        try:
            code = stream_stats.main(["--cache-dir", str(cache), *args])
        except SystemExit as exc:
            code = exc.code
        captured = capsys.readouterr()
        return Outcome(code, captured.out, captured.err)

    return call


def test_synthetic_json(run: Runner, tmp_path: Path) -> None:
    out = run("--dataset", "synthetic", "--n-segments", "5", "--json", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["n_segments"] == 5 and len(stats["segments"]) == 5
    required = {"segment", "n_users", "n_items", "n_train", "n_test", "n_test_users"}
    assert all(required <= row.keys() for row in stats["segments"])
    assert [row["segment"] for row in stats["segments"]] == list(range(5))
    assert stats["n_interactions"] == sum(row["n_interactions"] for row in stats["segments"])


def test_dataset_options_and_table(run: Runner, tmp_path: Path) -> None:
    out = run(
        "--dataset", "synthetic", "--option", "n_users=300", "--option", "n_items=200",
        "--option", "n_interactions=8000", "--k-core", "5", "--n-segments", "4", cache=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "4 segments" in out.stdout and "n_test_users" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--n-segments", "0"], "n_segments must be an integer >= 1"),
        (["--option", "colour=red"], "colour"),
        (["--option", "novalue"], "expected KEY=VALUE"),
        (["--segmentation", "time"], "needs a finite time_window"),
    ],
)
def test_bad_arguments_fail_fast(
    run: Runner, args: list[str], message: str, tmp_path: Path
) -> None:
    out = run("--dataset", "synthetic", *args, cache=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr


def test_help_documents_every_option(run: Runner, tmp_path: Path) -> None:
    out = run("--help", cache=tmp_path)
    for option in ("--dataset", "--data-dir", "--n-segments", "--k-core", "--json", "--seed"):
        assert option in out.stdout
    assert out.returncode == 0 and stream_stats.__doc__.splitlines()[0] in out.stdout


def test_script_shim_runs_the_module() -> None:
    out = subprocess.run(
        [sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    assert "usage: stream_stats.py" in out.stdout and "--segmentation" in out.stdout
    assert stream_stats.__doc__.splitlines()[0] in out.stdout


def test_console_script_is_installed() -> None:
    (point,) = entry_points(group="console_scripts", name="scall-stream-stats")
    assert point.load() is stream_stats.main
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    assert shutil.which("scall-stream-stats", path=search), "run pip install -e . first"
