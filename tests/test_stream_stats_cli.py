"""scripts/stream_stats.py: JSON output, options, bad arguments."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "stream_stats.py"


def run(*args: str, cache: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--cache-dir", str(cache), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def test_synthetic_json(tmp_path: Path) -> None:
    out = run("--dataset", "synthetic", "--n-segments", "5", "--json", cache=tmp_path)
    assert out.returncode == 0, out.stderr
    stats = json.loads(out.stdout)
    assert stats["n_segments"] == 5 and len(stats["segments"]) == 5
    required = {"segment", "n_users", "n_items", "n_train", "n_test", "n_test_users"}
    assert all(required <= row.keys() for row in stats["segments"])
    assert [row["segment"] for row in stats["segments"]] == list(range(5))
    assert stats["n_interactions"] == sum(row["n_interactions"] for row in stats["segments"])


def test_dataset_options_and_table(tmp_path: Path) -> None:
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
def test_bad_arguments_fail_fast(args: list[str], message: str, tmp_path: Path) -> None:
    out = run("--dataset", "synthetic", *args, cache=tmp_path)
    assert out.returncode == 2
    assert message in out.stderr


def test_help_documents_every_option(tmp_path: Path) -> None:
    out = run("--help", cache=tmp_path)
    for option in ("--dataset", "--data-dir", "--n-segments", "--k-core", "--json", "--seed"):
        assert option in out.stdout
