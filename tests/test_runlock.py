"""One process at a time in a run folder (:mod:`agents.runlock`), in the harness and in
``scall-compare``: a second process is refused with a message naming the first, and a killed
holder leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from _tiny import tiny_env

import scall_cli.compare
from agents.harness import RESULTS_FILE, run_agent
from agents.runlock import RunInUseError, check_not_in_use, run_lock

ENV = tiny_env(n_segments=3, search="fixed", search_steps=1, device="cpu")


def test_a_held_folder_is_refused_until_released(tmp_path: Path) -> None:
    run = tmp_path / "run"
    check_not_in_use(run)  # no lock file yet: free, and nothing created
    assert not run.exists()
    with run_lock(run):
        with pytest.raises(RunInUseError, match=rf"in use by pid {os.getpid()} on "):
            check_not_in_use(run)
        with pytest.raises(RunInUseError, match="another output folder"), run_lock(run):
            pass
    check_not_in_use(run)
    with run_lock(run):  # released: taken again
        pass


def test_a_killed_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from agents.runlock import run_lock\n"
         "with run_lock(sys.argv[1]):\n    print('held', flush=True); time.sleep(600)",
         str(tmp_path)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(RunInUseError, match=rf"pid {holder.pid} on "):
            check_not_in_use(tmp_path)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    check_not_in_use(tmp_path)


def test_run_agent_leaves_a_folder_in_use_alone(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / RESULTS_FILE).write_text("{}")  # another run's: must not be unlinked
    with run_lock(run), pytest.raises(RunInUseError):
        run_agent("uniform", "Scall-Synthetic-v0", run_dir=run, env_kwargs=ENV, seed=0)
    assert sorted(p.name for p in run.iterdir()) == [".lock", RESULTS_FILE]
    assert (run / RESULTS_FILE).read_text() == "{}"


def test_compare_with_a_run_in_use_starts_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    started: list[Any] = []
    monkeypatch.setattr(scall_cli.compare, "run_agent", lambda *a, **k: started.append(a))
    busy = tmp_path / "out" / "runs" / "uniform" / "seed1"
    argv = ["--env", "Scall-Synthetic-v0", "--agents", "uniform", "--seeds", "0", "1",
            "--output", str(tmp_path / "out"), "--env-kwargs", json.dumps(ENV),
            "--no-progress", "--resume"]  # fmt: skip
    with run_lock(busy), pytest.raises(SystemExit) as exit_info:
        scall_cli.compare.main(argv)
    assert exit_info.value.code == 2 and started == []
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1
    assert f"{busy} is in use by pid {os.getpid()}" in error
