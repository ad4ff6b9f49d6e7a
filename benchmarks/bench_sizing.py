"""Time the sizers: prints JSON with median milliseconds per call.

For each entity count n (split 65% users / 35% items, heavy-tailed counts, budget c = 32) it
times ``DistributionSizer(name).sizes`` for every registered distribution, the two baselines, and
the share + integer-size step alone for one side of n entities. Run:
``python benchmarks/bench_sizing.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from scall_env.sizing import (
    DistributionSizer,
    FrequencySizer,
    UniformSizer,
    available_distributions,
    budget_params,
    get_distribution,
    integer_sizes,
)

SIZES = (1_000, 10_000, 100_000)
ACTION = (0.6, 0.3, 0.7)
MEAN_SIZE = 32
TARGET_MS_AT_10K = 10.0


def median_ms(call: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``call`` in milliseconds, after one warm-up call.

    Args:
        call: The function to time.
        repeats: Number of timed calls.

    Returns:
        The median, rounded to 3 decimals.
    """
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return round(float(np.median(times)) * 1e3, 3)


def one_side(name: str, n: int) -> np.ndarray:
    """Shares and integer sizes for one side of ``n`` entities (alpha 0.3, mean size 32).

    Args:
        name: Registered distribution name.
        n: Number of entities.

    Returns:
        The sizes, largest first.
    """
    return integer_sizes(get_distribution(name).shares(0.3, n), MEAN_SIZE * n)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the JSON report (it takes no options but ``--help``)."""
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    rng = np.random.default_rng(0)
    report: dict[str, object] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "action": ACTION,
        "mean_size": MEAN_SIZE,
        "ms_per_call": {},
    }
    timings: dict[str, dict[str, float]] = {}
    for n in SIZES:
        n_users = int(n * 0.65)
        user_freq = (rng.zipf(1.6, n_users) - 1).clip(0, 10**6)
        item_freq = (rng.zipf(1.6, n - n_users) - 1).clip(0, 10**6)
        budget = budget_params("c", MEAN_SIZE, n_users, n - n_users)
        repeats = 50 if n <= 10_000 else 10
        row: dict[str, float] = {}
        sizers = {
            f"distribution:{name}": DistributionSizer(name) for name in available_distributions()
        }
        sizers |= {"uniform": UniformSizer(), "frequency:beta=0.5": FrequencySizer(0.5)}
        for label, sizer in sizers.items():
            row[label] = median_ms(
                partial(sizer.sizes, ACTION, user_freq, item_freq, budget), repeats
            )
        for name in available_distributions():
            row[f"one_side:{name}"] = median_ms(partial(one_side, name, n), repeats)
        timings[str(n)] = row
    report["ms_per_call"] = timings
    worst = max(v for k, v in timings["10000"].items() if k.startswith("distribution:"))
    report["worst_distribution_sizer_ms_at_10k"] = worst
    report["target_ms_at_10k"] = TARGET_MS_AT_10K
    report["meets_target"] = worst < TARGET_MS_AT_10K
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
