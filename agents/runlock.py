"""One process at a time in a run folder: an advisory lock on ``<run_dir>/.lock``.

Two processes in one run folder would each unlink the other's ``results.json`` and overwrite its
checkpoint, so the files could end up describing neither run. :func:`run_lock` holds an
exclusive ``flock`` on the folder's lock file for as long as a run works there; the operating
system drops it when the process ends, however it ends, so a killed run leaves no stale lock.
The lock file keeps the holder's pid, host and start time for the error message. A lock that
is busy is tried again for :data:`WAIT_S` seconds before the run is refused, so a momentary
:func:`check_not_in_use` elsewhere refuses nothing. ``flock`` locks hold between the processes
of one machine; on a folder shared between machines they are as good as the filesystem's
``flock`` (NFS emulates it with POSIX locks). Where ``fcntl`` is missing (Windows) runs are not
locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
"""Name of the lock file inside a run folder."""

WAIT_S = 2.0
"""How long :func:`run_lock` tries a busy lock again before refusing the run."""


class RunInUseError(RuntimeError):
    """Another live process holds the run folder's lock."""


@contextlib.contextmanager
def run_lock(run_dir: str | os.PathLike) -> Iterator[None]:
    """Holds the run folder's lock for the block (the folder is created when missing).

    Raises:
        RunInUseError: If another process holds it (the message names that process).
    """
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    with (folder / LOCK_FILE).open("a+") as handle:
        _take(handle, folder, WAIT_S)
        try:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
            handle.flush()
            yield
        finally:  # emptied first: the next holder's name is never mistaken for this one's
            handle.seek(0)
            handle.truncate()
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_not_in_use(run_dir: str | os.PathLike) -> None:
    """Raises :class:`RunInUseError` if a live process holds the folder's lock.

    Only looks: takes the lock for an instant without writing, creates nothing.

    Raises:
        RunInUseError: As :func:`run_lock`.
    """
    if fcntl is None:  # pragma: no cover - Windows
        return
    path = Path(run_dir) / LOCK_FILE
    if not path.exists():
        return
    with path.open("r") as handle:
        _take(handle, Path(run_dir), 0.0)
        fcntl.flock(handle, fcntl.LOCK_UN)


def _take(handle: IO[str], folder: Path, wait_s: float) -> None:
    """Takes the exclusive lock on ``handle``, trying again for ``wait_s`` seconds.

    Raises:
        RunInUseError: If it is still held by another process after that.
    """
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
    handle.seek(0)
    holder = handle.read().strip() or "another process (it has not said which yet)"
    raise RunInUseError(
        f"the run folder {folder} is in use by {holder}; wait for that run to end (or stop it),"
        " or give this one another output folder"
    )
