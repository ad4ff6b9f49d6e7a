"""Time interaction loading: MovieLens (when its files are available) and synthetic streams.

Usage::

    python benchmarks/bench_load.py --data-dir /work/shared/data --repeat 5

Prints one JSON object: per source, the minimum and median load time in seconds over the
repeats and the number of rows, or the reason it was skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import int_at_least

from scall_env.data import DatasetNotFoundError, Interactions, load_interactions

SYNTHETIC_SIZES = (100_000, 1_000_000)
"""Synthetic stream sizes timed; users and items scale like the defaults (n/30 and n/60)."""


def time_load(load: Callable[[], Interactions], repeat: int) -> dict[str, Any]:
    """Time a loader.

    Args:
        load: Zero-argument callable returning interactions.
        repeat: Number of timed calls.

    Returns:
        ``seconds_min``, ``seconds_median`` and ``rows`` of the loaded frame.
    """
    seconds = []
    rows = 0
    for _ in range(repeat):
        start = time.perf_counter()
        rows = len(load().frame)
        seconds.append(time.perf_counter() - start)
    return {
        "seconds_min": round(min(seconds), 4),
        "seconds_median": round(statistics.median(seconds), 4),
        "rows": rows,
    }


def bench_movielens(dataset: str, data_dir: Path | None, repeat: int) -> dict[str, Any]:
    """Time a MovieLens release found locally (never downloads).

    Args:
        dataset: ``ml-1m`` or ``ml-100k``.
        data_dir: Folder to search (``None``: the default data folder).
        repeat: Number of timed loads.

    Returns:
        The timings, or ``{"skipped": reason}`` when the files are absent.
    """
    try:
        load_interactions(dataset, data_dir, download=False)
    except DatasetNotFoundError as err:
        return {"skipped": str(err)}
    return time_load(lambda: load_interactions(dataset, data_dir, download=False), repeat)


def bench_synthetic(size: int, repeat: int) -> dict[str, Any]:
    """Time the synthetic generator.

    Args:
        size: Number of interactions.
        repeat: Number of timed generations.

    Returns:
        The timings.
    """
    return time_load(
        lambda: load_interactions(
            "synthetic", n_users=size // 30, n_items=size // 60, n_interactions=size
        ),
        repeat,
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and print its JSON.

    Args:
        argv: Command-line arguments (``None``: ``sys.argv``).

    Returns:
        The results that were printed.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        choices=("all", "ml-1m", "ml-100k", "synthetic"),
        default="all",
        help="what to time; 'all' is ml-1m plus the synthetic sizes (default)",
    )
    parser.add_argument(
        "--data-dir", type=Path, default=None, help="folder holding MovieLens files"
    )
    parser.add_argument(
        "--repeat", type=int_at_least(1), default=3, help="timed loads per source (default: 3)"
    )
    args = parser.parse_args(argv)
    results: dict[str, Any] = {}
    for dataset in ("ml-1m", "ml-100k"):
        if args.dataset == dataset or (args.dataset == "all" and dataset == "ml-1m"):
            results[dataset] = bench_movielens(dataset, args.data_dir, args.repeat)
    if args.dataset in ("all", "synthetic"):
        for size in SYNTHETIC_SIZES:
            results[f"synthetic-{size}"] = bench_synthetic(size, args.repeat)
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
