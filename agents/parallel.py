"""Run independent units of work (a comparison's runs) one by one, in local processes or on Ray.

:func:`run_units` calls ``fn(unit, progress)`` for every unit and returns the results in the
order of the units, whichever backend ran them:

* ``serial``: in this process, one after the other;
* ``process``: a local pool of ``workers`` processes (``spawn``: a fork of a process that has
  imported torch can hang);
* ``ray``: Ray tasks, at most ``workers`` at a time, each reserving ``threads`` CPUs. With
  ``address`` (or ``$RAY_ADDRESS``) they join that cluster, else a local one with
  ``workers * threads`` CPUs is started (and stopped afterwards). Each task is named after its
  unit, and the progress lines go through a small actor (``ProgressBoard``) that also prints them
  to its log: both show in Ray's dashboard where one runs (``pip install "ray[default]"``).

Each worker caps torch and OpenMP at ``threads`` threads (``OMP_NUM_THREADS``,
``MKL_NUM_THREADS`` set before torch loads, and ``torch.set_num_threads``); serial runs use
``threads`` in this process too. The SAC agents' numbers depend on the thread count (their
matrix products sum in another order), so the same ``threads`` is what makes every backend give
the same results. ``progress`` sends a line to the driver, which hands it
to ``report`` as it arrives. ``fn`` and the units must be picklable (``fn`` a module-level
function) for the process and Ray backends. The first unit that raises stops the others (queued
ones are cancelled; running ones finish in a process pool, are cancelled on Ray) and its exception
is raised here.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, TypeVar

BACKENDS = ("serial", "process", "ray")
"""Where the units run."""
#: Environment variables that every Ray task gets from the driver when they are set there (the
#: data and cache folders, which must then be the same shared paths on every machine).
FORWARDED = ("SCALL_DATA_DIR", "SCALL_CACHE_DIR")
POLL_S = 0.5
"""How often the driver looks for progress lines and finished units."""

Unit = TypeVar("Unit")
Result = TypeVar("Result")
Progress = Callable[[str], None]
Work = Callable[[Unit, Progress], Result]

_progress_queue: Any = None  # a process worker's line to the driver (set by _init_process)


def thread_env(threads: int) -> dict[str, str]:
    """The variables that cap a worker at ``threads`` threads; OpenMP threads wait passively
    unless told otherwise (spinning threads slow down everything else on a shared machine)."""
    return {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE"),
    }


def cap_threads(threads: int) -> None:
    """Cap this process's torch and OpenMP threads (for the libraries not loaded yet: also the
    environment)."""
    import torch  # here: the worker's environment is set before torch loads where possible

    os.environ.update(thread_env(threads))
    torch.set_num_threads(threads)


def run_units(
    fn: Work,
    units: Sequence[Unit],
    *,
    names: Sequence[str],
    backend: str = "serial",
    workers: int = 1,
    threads: int = 1,
    report: Progress = print,
    address: str | None = None,
) -> list[Result]:
    """``[fn(unit, progress) for unit in units]`` on ``backend`` (see the module docstring).

    Args:
        fn: The work of one unit; module-level, so that workers can import it.
        units: The units (picklable).
        names: A name per unit (Ray task names).
        backend: One of :data:`BACKENDS`.
        workers: Units run at the same time (``process``, ``ray``).
        threads: Torch/OpenMP threads per worker (``serial``: of this process, meanwhile).
        report: Receives every progress line, in the driver.
        address: Ray cluster to join (default ``$RAY_ADDRESS``; none: start a local one).

    Raises:
        ValueError: An unknown backend, fewer than 1 worker or thread, Ray not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if workers < 1 or threads < 1:
        raise ValueError(f"workers and threads must be >= 1, got {workers} and {threads}")
    if backend == "serial":
        with _torch_threads(threads):
            return [fn(unit, report) for unit in units]
    if backend == "process":
        return _run_processes(fn, list(units), workers, threads, report)
    return _run_ray(fn, list(units), list(names), workers, threads, report, address)


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block (children started in it inherit them)."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _init_process(lines: Any, threads: int) -> None:
    global _progress_queue
    _progress_queue = lines
    cap_threads(threads)


def _call_in_process(fn: Work, unit: Unit) -> Result:
    return fn(unit, _progress_queue.put)


def _drain(lines: Any, report: Progress) -> None:
    while True:
        try:
            report(lines.get_nowait())
        except queue.Empty:
            return


def _run_processes(
    fn: Work, units: list[Unit], workers: int, threads: int, report: Progress
) -> list[Result]:
    context = multiprocessing.get_context("spawn")
    lines = context.Queue()
    results: dict[int, Result] = {}
    # spawned children copy this environment: the thread caps hold before they import torch
    with _environ(thread_env(threads)):
        pool = ProcessPoolExecutor(
            workers, mp_context=context, initializer=_init_process, initargs=(lines, threads)
        )
        futures = {pool.submit(_call_in_process, fn, unit): i for i, unit in enumerate(units)}
        pending = set(futures)
        try:
            while pending:
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                _drain(lines, report)
                for future in done:
                    results[futures[future]] = future.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            _drain(lines, report)
    return [results[i] for i in range(len(units))]


class ProgressBoard:
    """Ray actor that collects progress lines (and prints them to its log, for the dashboard)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def put(self, line: str) -> None:
        print(line, flush=True)
        self.lines.append(line)

    def take(self) -> list[str]:
        lines, self.lines = self.lines, []
        return lines


def _call_on_ray(fn: Work, unit: Unit, board: Any, threads: int) -> Result:
    import ray

    cap_threads(threads)
    sent: list[Any] = []
    result = fn(unit, lambda line: sent.append(board.put.remote(line)))
    ray.get(sent)  # every line is on the board before the driver sees the result
    return result


def _run_ray(
    fn: Work,
    units: list[Unit],
    names: list[str],
    workers: int,
    threads: int,
    report: Progress,
    address: str | None,
) -> list[Result]:
    try:
        import ray
    except ImportError as exc:
        raise ValueError(
            'the ray backend needs Ray: pip install "scall[ray]" (or "ray>=2.9")'
        ) from exc
    started = not ray.is_initialized()
    if started:
        address = address or os.environ.get("RAY_ADDRESS")
        cpus = None if address else workers * threads  # a cluster knows its own CPUs
        ray.init(address=address, num_cpus=cpus, log_to_driver=False)
    env_vars = {**thread_env(threads), **{k: os.environ[k] for k in FORWARDED if k in os.environ}}
    task = ray.remote(num_cpus=threads, max_retries=0, runtime_env={"env_vars": env_vars})(
        _call_on_ray
    )
    board = ray.remote(num_cpus=0)(ProgressBoard).remote()
    results: dict[int, Result] = {}
    pending: dict[Any, int] = {}
    queued = iter(range(len(units)))
    try:
        while True:
            while len(pending) < workers and (i := next(queued, None)) is not None:
                pending[task.options(name=names[i]).remote(fn, units[i], board, threads)] = i
            if not pending:
                break
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_S)
            for line in ray.get(board.take.remote()):
                report(line)
            for ref in ready:
                try:
                    results[pending.pop(ref)] = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the unit's own error, not Ray's
                    raise exc.cause if isinstance(exc.cause, Exception) else exc from None
        for line in ray.get(board.take.remote()):
            report(line)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        ray.kill(board)
        if started:
            ray.shutdown()
    return [results[i] for i in range(len(units))]
