"""One process at a time in a run folder (:mod:`agents.runlock`), in the harness and in
``scall-compare``: a second process is refused with a message naming the first, and a killed
holder leaves no stale lock."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from _tiny import tiny_env

import agents.runlock
import scall_cli.compare
import scall_cli.train
from agents.harness import RESULTS_FILE, run_agent
from agents.runlock import LOCK_FILE, RunInUseError, check_not_in_use, run_lock
from scall_cli._args import removed_on_error

ENV = tiny_env(n_segments=3, search="fixed", search_steps=1, device="cpu")


@pytest.fixture(autouse=True)
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agents.runlock, "WAIT_S", 0.3)


def test_a_held_folder_is_refused_until_released(tmp_path: Path) -> None:
    run = tmp_path / "run"
    check_not_in_use(run)  # no lock file yet: free, and nothing created
    assert not run.exists()
    with run_lock(run):
        holder = (run / LOCK_FILE).read_text()
        assert holder.startswith(f"pid {os.getpid()} on ")
        with pytest.raises(RunInUseError, match=f"in use by {holder.strip()}; wait"):
            check_not_in_use(run)
        assert (run / LOCK_FILE).read_text() == holder  # looking rewrote nothing
        with pytest.raises(RunInUseError, match="another output folder"), run_lock(run):
            pass
    check_not_in_use(run)
    with run_lock(run):  # released: taken again
        pass


def test_a_lock_released_within_the_wait_is_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agents.runlock, "WAIT_S", 60.0)  # no timing: the holder lets go on cue
    held, release, released = threading.Event(), threading.Event(), threading.Event()
    waits: list[float] = []

    def hold() -> None:
        with run_lock(tmp_path):
            held.set()
            release.wait()
        released.set()

    def sleep(seconds: float) -> None:  # the taker found the lock busy: the holder ends now
        waits.append(seconds)
        release.set()
        released.wait()

    clock = SimpleNamespace(monotonic=time.monotonic, strftime=time.strftime, sleep=sleep)
    monkeypatch.setattr(agents.runlock, "time", clock)
    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    with run_lock(tmp_path):  # busy when asked, free after one wait: no refusal
        pass
    thread.join()
    assert waits == [0.1]


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


def test_resuming_a_missing_run_creates_nothing(tmp_path: Path) -> None:
    run = tmp_path / "missing"
    with pytest.raises(ValueError, match="the folder does not exist"):
        run_agent("uniform", "Scall-Synthetic-v0", run_dir=run, env_kwargs=ENV, resume=True)
    assert not run.exists()


def test_a_refused_run_leaves_the_holders_folder(tmp_path: Path) -> None:
    # the holder created the folder after the refused CLI looked: still not the CLI's to remove
    run = tmp_path / "new" / "run"
    with pytest.raises(RunInUseError), removed_on_error(run):
        run.mkdir(parents=True)
        raise RunInUseError("held")
    assert run.is_dir()
    with pytest.raises(ValueError), removed_on_error(tmp_path / "other" / "run"):
        (tmp_path / "other" / "run").mkdir(parents=True)
        raise ValueError("bad setting")
    assert not (tmp_path / "other").exists()


def test_train_on_a_folder_in_use_exits_2_and_leaves_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    argv = ["--algo", "uniform", "--env", "Scall-Synthetic-v0", "--save-path", str(run),
            "--env-kwargs", json.dumps(ENV), "--no-progress"]  # fmt: skip
    with run_lock(run), pytest.raises(SystemExit) as exit_info:
        (run / RESULTS_FILE).write_text("{}")
        scall_cli.train.main(argv)
    assert exit_info.value.code == 2
    assert "is in use by pid" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == [LOCK_FILE, RESULTS_FILE]
