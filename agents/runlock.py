"""One process at a time in a run folder: an advisory lock on ``<run_dir>/.lock``.

Two processes in one run folder would each unlink the other's ``results.json`` and overwrite its
checkpoint, so the files could end up describing neither run. :func:`run_lock` holds an
exclusive ``flock`` on the folder's lock file for as long as a run works there; the operating
system drops it when the process ends, however it ends, so a killed run leaves no stale lock.
The lock file keeps the holder's pid, host and start time for the error message. ``flock`` is
POSIX (and works across the machines of an NFSv4 share); where ``fcntl`` is missing (Windows)
runs are not locked.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
"""Name of the lock file inside a run folder."""


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
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "a process that did not say which"
            raise RunInUseError(
                f"the run folder {folder} is in use by {holder}; wait for that run to end (or"
                " stop it), or give this one another output folder"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            started = time.strftime("%Y-%m-%d %H:%M:%S")
            handle.write(f"pid {os.getpid()} on {socket.gethostname()} since {started}\n")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def check_not_in_use(run_dir: str | os.PathLike) -> None:
    """Raises :class:`RunInUseError` if a live process holds the folder's lock (checks only).

    Raises:
        RunInUseError: As :func:`run_lock`.
    """
    if (Path(run_dir) / LOCK_FILE).exists():
        with run_lock(run_dir):
            pass
