"""Time a comparison serially and on 2 workers, and what the checkpoints cost; prints JSON.

Runs ``scall-compare`` on ``--config`` (default the quick-start: 4 agents x 3 seeds on the
synthetic stream) twice in this process, each into a fresh output and a fresh cache folder (so
both build the stream and train segment 0 of every seed):

* ``serial``: ``--backend serial``;
* ``parallel``: ``--backend process`` (or ``--backend ray``) with ``--workers`` workers,
  worker start-up included;

both with ``--threads-per-worker`` torch threads per run (default 1, as ``scall-compare``).

Reported: both wall and CPU times, the cores each kept busy (CPU / wall: other jobs on shared cores
hold it below the workers; not for Ray, whose workers are not this process's children), the
speed-up (target >= 1.6 with 2 workers on 2 free cores), whether
both gave the same tables (``summary.csv`` and ``segments.csv`` without wall times), and, from the
serial comparison, every checkpoint's write time, its size and the share of its run's wall time
that all of a run's checkpoints took (target < 5%). Other jobs on the machine inflate the times
and shrink the speed-up: the load average before and after is reported beside them.

Example::

    python benchmarks/bench_parallel.py --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from _common import int_at_least, machine, rounded

import agents.checkpoint
from scall_cli import compare

ROOT = Path(__file__).resolve().parents[1]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The benchmark's options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=ROOT / "configs" / "quickstart.yaml")
    parser.add_argument("--backend", choices=("process", "ray"), default="process")
    parser.add_argument("--workers", type=int_at_least(1), default=2)
    parser.add_argument("--threads-per-worker", type=int_at_least(1), default=1)
    return parser.parse_args(argv)


def cpu_s() -> float:
    """CPU seconds of this process and its finished children (the worker processes) so far."""
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compare_in(folder: Path, config: dict[str, Any], *options: str) -> dict[str, float]:
    """Run the comparison into ``folder`` (its own cache inside); its wall and CPU seconds and
    their ratio, the cores it kept busy (at most the workers; less when others share them)."""
    path = folder / "config.yaml"
    env_kwargs = {**(config.get("env_kwargs") or {}), "cache_dir": str(folder / "cache")}
    path.write_text(yaml.safe_dump({**config, "env_kwargs": env_kwargs}))
    start, cpu = time.perf_counter(), cpu_s()
    with contextlib.redirect_stdout(sys.stderr):  # its progress and tables; stdout: the JSON
        code = compare.main(["--config", str(path), "--output", str(folder / "out"), *options])
    if code != 0:
        raise RuntimeError(f"the comparison in {folder} failed (exit status {code})")
    wall, cpu = time.perf_counter() - start, cpu_s() - cpu
    return {"wall_s": wall, "cpu_s": cpu, "cores_busy": cpu / wall}


def tables(folder: Path) -> list[pd.DataFrame]:
    """The comparison's tables without the wall-time columns."""
    return [
        pd.read_csv(folder / "out" / name).drop(columns=["wall_time_s"], errors="ignore")
        for name in ("summary.csv", "segments.csv")
    ]


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Both comparisons and the checkpoint costs (see the module docstring)."""
    config = yaml.safe_load(args.config.read_text())
    saves: dict[Path, list[float]] = defaultdict(list)
    sizes: list[int] = []
    save = agents.checkpoint.Checkpointer.save

    def timed_save(self: agents.checkpoint.Checkpointer) -> None:
        start = time.perf_counter()
        save(self)
        saves[self.path.parent].append(time.perf_counter() - start)
        sizes.append(self.path.stat().st_size)

    before = machine()
    with tempfile.TemporaryDirectory() as serial_dir, tempfile.TemporaryDirectory() as parallel_dir:
        agents.checkpoint.Checkpointer.save = timed_save
        try:
            serial = compare_in(Path(serial_dir), config, "--no-progress", "--threads-per-worker",
                                str(args.threads_per_worker))  # fmt: skip
        finally:
            agents.checkpoint.Checkpointer.save = save
        middle = machine()
        parallel = compare_in(
            Path(parallel_dir), config, "--no-progress", "--backend", args.backend,
            "--workers", str(args.workers), "--threads-per-worker", str(args.threads_per_worker),
        )  # fmt: skip
        if args.backend == "ray":  # its workers are the cluster's processes, not our children
            parallel.update(cpu_s=None, cores_busy=None)
        same = all(
            a.equals(b)
            for a, b in zip(tables(Path(serial_dir)), tables(Path(parallel_dir)), strict=True)
        )
        shares = {
            str(run.relative_to(Path(serial_dir) / "out" / "runs")): sum(times)
            / json.loads((run / "results.json").read_text())["wall_time_s"]
            for run, times in saves.items()
        }
    every = [t for times in saves.values() for t in times]
    return {
        "config": str(args.config),
        "workers": args.workers,
        "threads_per_worker": args.threads_per_worker,
        "serial": serial,
        args.backend: parallel,
        "speedup": serial["wall_s"] / parallel["wall_s"],
        "same_tables": same,
        "checkpoint": {
            "count": len(every),
            "mean_s": sum(every) / len(every) if every else None,
            "max_s": max(every, default=None),
            "max_mb": max(sizes, default=0) / 2**20,
            "share_of_run_max": max(shares.values(), default=None),
            "share_of_run_by_run": shares,
        },
        "machine": {"before": before, "between": middle, "after": machine()},
    }


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints its JSON.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).
    """
    report = run_benchmark(parse_args(argv))
    print(json.dumps(rounded(report), indent=2))


if __name__ == "__main__":
    main()
