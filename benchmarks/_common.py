"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<script>.py``).

* :func:`make_parser`: one argument parser with the options the scripts share (``--dataset``,
  ``--data-dir``, ``--n-segments``, ``--k-core``, ``--seed``, ``--device``, ``--threads``,
  ``--omp-wait-policy``, ``--json``), each defined once, with :func:`int_at_least` for
  script-specific integer options.
* :func:`run_child`: runs a module-level function of a benchmark script in a fresh ``python``
  process (:func:`child_env` sets its ``OMP_WAIT_POLICY`` and thread caps) and returns its
  JSON result with the child's peak resident memory. Running this file itself is that child's
  entry point: ``python _common.py SCRIPT FUNCTION KWARGS_JSON``.
* :func:`place_at_segment`: puts a :class:`~scall_env.search.SearchCore` on segment ``t``
  without training segments ``0..t-1``, so that ``SearchCore.trial`` can be timed there.
* :func:`timed`, :func:`machine`, :func:`print_report`, :func:`rounded`: timing, machine load
  and printing.

This module imports neither torch nor ``scall_env`` at import time, so a child starts lean and
its ``OMP_WAIT_POLICY`` takes effect before torch loads.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scall_env.search import SearchCore

OMP_WAIT_POLICIES = ("inherit", "passive", "active")
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Environment variables that cap a child's threads (torch reads ``OMP_NUM_THREADS``)."""


# ---------------------------------------------------------------------------------- parsing
def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` accepting integers ``>= low``, with a clear message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be an integer >= {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _dataset(text: str) -> str:
    from scall_env.data import DATASETS

    if text not in DATASETS:
        raise argparse.ArgumentTypeError(f"unknown dataset {text!r}; choose from {DATASETS}")
    return text


def _device(text: str) -> str:
    from scall_env.recsys import resolve_device

    try:
        resolve_device(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text  # kept as text: it travels to child processes as JSON


COMMON_OPTIONS: dict[str, tuple[str, dict[str, Any]]] = {
    "dataset": (
        "--dataset",
        {"type": _dataset, "default": "ml-1m", "help": "dataset name (default: ml-1m)"},
    ),
    "data_dir": (
        "--data-dir",
        {"default": None, "help": "folder holding the datasets (default: $SCALL_DATA_DIR)"},
    ),
    "n_segments": (
        "--n-segments",
        {"type": int_at_least(2), "default": 10, "help": "equal-count segments (default: 10)"},
    ),
    "k_core": (
        "--k-core",
        {"type": int_at_least(1), "default": 10, "help": "k-core filter (default: 10)"},
    ),
    "seed": ("--seed", {"type": int_at_least(0), "default": 0, "help": "seed (default: 0)"}),
    "device": (
        "--device",
        {"type": _device, "default": "auto", "help": "torch device (default: auto)"},
    ),
    "threads": (
        "--threads",
        {
            "type": int_at_least(0),
            "default": 0,
            "help": "torch threads of the child processes (default 0: torch's default)",
        },
    ),
    "omp_wait_policy": (
        "--omp-wait-policy",
        {
            "choices": OMP_WAIT_POLICIES,
            "default": "passive",
            "help": "OMP_WAIT_POLICY of the child processes (default: passive, what importing "
            "scall_env before torch sets; 'inherit' keeps this shell's). With the spinning "
            "policy any other busy process on a 2-core machine can slow small torch ops many "
            "times",
        },
    ),
    "json": ("--json", {"action": "store_true", "help": "print JSON instead of a table"}),
}
"""Shared options: name in the parsed namespace -> (flag, ``add_argument`` keywords)."""


def make_parser(
    description: str | None,
    options: tuple[str, ...] = tuple(COMMON_OPTIONS),
    **defaults: Any,
) -> argparse.ArgumentParser:
    """A parser holding the shared ``options``; the script adds its own after.

    Args:
        description: The script's module docstring (shown as is by ``--help``).
        options: Names of :data:`COMMON_OPTIONS` to add, in this order.
        **defaults: Other defaults for some of those options (e.g. ``device="cpu"``).

    Returns:
        The parser.

    Raises:
        ValueError: An unknown option name, or a default for an option not added.
    """
    unknown = sorted(set(options) - set(COMMON_OPTIONS))
    stray = sorted(set(defaults) - set(options))
    if unknown or stray:
        raise ValueError(f"unknown options {unknown} or defaults for absent options {stray}")
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    for name in options:
        flag, keywords = COMMON_OPTIONS[name]
        keywords = dict(keywords)
        if name in defaults:
            keywords["default"] = defaults[name]
            keywords["help"] = (
                keywords["help"].split(" (default")[0] + f" (default: {defaults[name]})"
            )
        parser.add_argument(flag, **keywords)
    return parser


# ---------------------------------------------------------------------------- children
@dataclass(frozen=True)
class ChildResult:
    """What :func:`run_child` got back.

    Attributes:
        value: The function's return value (parsed JSON).
        peak_rss_mb: The child's peak resident memory in MiB (imports, data and all).
        wall_s: Seconds from starting the child to its exit, as seen by the parent.
    """

    value: Any
    peak_rss_mb: float
    wall_s: float


class ChildError(RuntimeError):
    """A child process failed; the message ends with the tail of its stderr."""


def child_env(omp_wait_policy: str = "passive", threads: int = 0) -> dict[str, str]:
    """This process's environment with a child's OpenMP wait policy and thread cap.

    Args:
        omp_wait_policy: ``"passive"``, ``"active"``, or ``"inherit"`` (leave it as it is).
        threads: Threads per child (``0``: leave the caps as they are).

    Returns:
        The environment variables for :func:`run_child`.
    """
    if omp_wait_policy not in OMP_WAIT_POLICIES:
        raise ValueError(f"omp_wait_policy must be one of {OMP_WAIT_POLICIES}")
    env = dict(os.environ)
    if omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = omp_wait_policy.upper()
    if threads > 0:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env


def run_child(
    function: Callable[..., Any],
    kwargs: Mapping[str, Any] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> ChildResult:
    """Runs ``function(**kwargs)`` in a fresh ``python`` process and returns its JSON result.

    The child loads the function's file by path (so ``python benchmarks/x.py`` scripts work),
    calls it, and prints one JSON line last on stdout with the result and its peak memory.

    Args:
        function: A module-level function of a ``.py`` file, returning JSON-ready values.
        kwargs: Its keyword arguments (JSON-ready).
        env: The child's environment (``None``: this process's; see :func:`child_env`).
        timeout: Seconds before the child is killed (``None``: no limit).

    Returns:
        The result, the child's peak RSS and its wall time.

    Raises:
        ValueError: ``function`` is not a module-level function of a file.
        ChildError: The child exited with an error (its stderr tail is in the message).
    """
    name = function.__name__
    script = Path(inspect.getfile(function)).resolve()
    if function.__qualname__ != name or script.suffix != ".py":
        raise ValueError(f"{function.__qualname__} is not a module-level function of a .py file")
    command = [sys.executable, str(Path(__file__).resolve()), str(script), name]
    command.append(json.dumps(dict(kwargs or {})))
    start = time.perf_counter()
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=None if env is None else dict(env),
        timeout=timeout,
    )
    wall_s = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise ChildError(
            f"{script.name}:{name} exited with status {done.returncode}:\n{done.stderr[-3000:]}"
        )
    report = json.loads(lines[-1])
    return ChildResult(report["result"], report["peak_rss_mb"], wall_s)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _child_main(script: str, name: str, kwargs_json: str) -> None:
    """Entry point of a child started by :func:`run_child`."""
    path = Path(script)
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(f"_bench_child_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    result = getattr(module, name)(**json.loads(kwargs_json))
    sys.stdout.flush()
    print(json.dumps({"result": result, "peak_rss_mb": peak_rss_mb()}))


# ------------------------------------------------------------------------- search core
def place_at_segment(core: SearchCore, t: int, seed: int = 0) -> None:
    """Makes ``core`` search segment ``t`` without training segments ``0..t-1``.

    Stand-in for a public ``SearchCore.at_segment(t, model=None)`` (not there yet): installs a
    fresh, untrained model with uniform sizes as the committed one. ``SearchCore.trial`` uses
    only the segment index (its trial model is fresh), so trials run exactly as they would after
    real commits; the reference fitness is unknown (NaN) and no record is added.

    Args:
        core: The search core.
        t: Segment index in ``[0, core.n_segments)``.
        seed: Seed of the stand-in committed model.
    """
    from scall_env.sizing import UniformSizer

    if not 0 <= t < core.n_segments:
        raise ValueError(f"segment {t} is not in [0, {core.n_segments})")
    segment = core.segment(t)
    cfg = core.config
    sizes = UniformSizer().sizes(
        None,
        segment.user_freq,
        segment.item_freq,
        core.budget_params(segment),
        d_max=cfg.d_max,
        min_size=cfg.min_size,
    )
    core.model = core.new_model(segment, sizes, seed)
    core.segment_index = t
    core.committed_sizes = sizes
    core.reference = float("nan")
    core.committed = []


# ------------------------------------------------------------------------------ misc
def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Returns ``(fn(*args, **kwargs), wall-clock seconds)``."""
    start = time.perf_counter()
    value = fn(*args, **kwargs)
    return value, time.perf_counter() - start


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other jobs inflate the timings)."""
    return [round(v, 2) for v in os.getloadavg()]


def machine() -> dict[str, Any]:
    """CPU counts and the load average now."""
    return {
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "loadavg": load_average(),
    }


def print_report(
    report: dict[str, Any], *, as_json: bool, table: Callable[[dict[str, Any]], None]
) -> None:
    """Prints ``report`` as indented JSON (floats :func:`rounded`) or with ``table``."""
    if as_json:
        print(json.dumps(rounded(report), indent=2))
    else:
        table(report)


def rounded(value: Any) -> Any:
    """Round floats (recursively through dicts, lists and tuples) to 4 decimals for printing."""
    if isinstance(value, float | np.floating):
        return round(float(value), 4)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(item) for item in value]
    return value


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python _common.py SCRIPT FUNCTION KWARGS_JSON (see run_child)")
    _child_main(*sys.argv[1:])
