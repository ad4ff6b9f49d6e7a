"""Time reset and step of the registered SCALL environments, through ``gym.make``.

Each environment (``ScallEnv``, whose reset and steps run ``scall_env.search.SearchCore``) runs
in its own fresh subprocess (``_common.run_child``, so its ``peak_rss_mb`` is its own) with a fresh
temporary cache folder (``cache_dir=``), so the first reset is honest: it builds the stream and
trains segment 0 to convergence. Reported per environment (seconds):

* ``stream_s``: building the stream (and writing it to the empty cache), the first thing a reset
  does; ``first_reset_s``: the rest of that first reset (budget check, segment-0 convergence);
  ``first_reset_total_s``: both.
* ``second_reset_s``: a second ``reset`` of the same environment (segment 0 from memory);
  ``cached_reset_s``: a new environment on the same cache folder, made and reset (stream and
  segment 0 from disk).
* ``search_step_{mean,median,min,max}_s`` over the steps that did not commit (one trial each),
  ``first_step_s``, and ``commit_steps``: each step that committed (a trial plus training the next
  segment to convergence), with its time and chunks.

Actions are uniform in ``[-1, 1]^3`` from ``numpy.random.default_rng(--seed)``, and the
environments run with ``search="fixed"`` (every other argument is the id's): random actions never
settle the adaptive stopping rule, which would search each segment to ``search_max_steps`` (60)
before committing, while a trial and a commit cost the same under either rule. With
``search_steps = 11`` the first commit happens at step 11 (``Scall-Synthetic-v0``: 5). Default
``--steps`` per environment, chosen to stay within about 5 minutes each on 2 CPU cores: 12 (one
commit) for ``Scall-Synthetic-v0``, ``Scall-ML1M-MF-v0`` and ``Scall-ML100K-v0``; 3 (no commit)
for ``Scall-ML1M-v0``, whose commit (LightGCN trained to convergence on segment 1) alone takes
minutes. ``--steps N`` applies to every environment.

Targets (mean search step, 2 CPU cores): ``Scall-Synthetic-v0`` < 0.5 s, ``Scall-ML1M-MF-v0``
<= 3 s, ``Scall-ML1M-v0`` <= 30 s. Timings are inflated when other jobs share the cores; the
load average before and after is reported. Torch's OpenMP threads spin while they wait by
default, and with other busy processes on a 2-core machine that makes steps 10-25x slower; the
environments run with ``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-wait-policy`` says otherwise.

Example (prints JSON)::

    python benchmarks/bench_env.py --env Scall-Synthetic-v0 --env Scall-ML1M-MF-v0 \\
        --data-dir ../shared/data --json
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from _common import (
    ChildError,
    child_env,
    int_at_least,
    load_average,
    machine,
    make_parser,
    print_report,
    run_child,
)

from scall_env import ENV_KWARGS  # importing scall_env registers the ids

DEFAULT_STEPS: dict[str, int] = {
    "Scall-Synthetic-v0": 12,
    "Scall-ML1M-MF-v0": 12,
    "Scall-ML100K-v0": 12,
    "Scall-ML1M-v0": 3,
}
"""Steps run per environment when ``--steps`` is not given (12 for unlisted ids)."""
TARGETS: dict[str, float] = {
    "Scall-Synthetic-v0": 0.5,
    "Scall-ML1M-MF-v0": 3.0,
    "Scall-ML1M-v0": 30.0,
}
"""Target mean search-step time in seconds (Synthetic: strictly below)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The parsed arguments (``env`` expanded to a list of ids).
    """
    parser = make_parser(__doc__, ("data_dir", "seed", "threads", "omp_wait_policy", "json"))
    parser.add_argument(
        "--env",
        action="append",
        default=None,
        metavar="ID",
        help=f"environment id, repeatable, or 'all' ({', '.join(ENV_KWARGS)}); "
        "default: Scall-Synthetic-v0",
    )
    parser.add_argument(
        "--steps",
        type=int_at_least(0),
        default=None,
        help="steps per environment (default: 3 for Scall-ML1M-v0, 12 for the others)",
    )
    args = parser.parse_args(argv)
    ids: list[str] = []
    for name in args.env or ["Scall-Synthetic-v0"]:
        for env_id in ENV_KWARGS if name == "all" else [name]:
            if env_id not in ENV_KWARGS:
                parser.error(f"unknown --env {env_id!r}; choose from {', '.join(ENV_KWARGS)}")
            if env_id not in ids:
                ids.append(env_id)
    args.env = ids
    return args


def _stats(values: list[float], prefix: str) -> dict[str, float | int | None]:
    """Count, mean, median, min and max of ``values`` under ``prefix`` (None when empty)."""
    return {
        f"{prefix}_n": len(values),
        f"{prefix}_mean_s": statistics.fmean(values) if values else None,
        f"{prefix}_median_s": statistics.median(values) if values else None,
        f"{prefix}_min_s": min(values) if values else None,
        f"{prefix}_max_s": max(values) if values else None,
    }


def bench_env(env_id: str, steps: int, seed: int, data_dir: str | None) -> dict[str, Any]:
    """Times reset and ``steps`` random steps of one environment in this process.

    Args:
        env_id: A registered id.
        steps: Steps to run (the episode is reset if it terminates).
        seed: Seed of ``reset`` and of the action generator.
        data_dir: Dataset folder (``None``: the environment's default lookup).

    Returns:
        JSON-ready timings.
    """
    kwargs: dict[str, Any] = {"search": "fixed"}  # random actions never settle the adaptive rule
    if data_dir is not None:
        kwargs["data_dir"] = data_dir
    cache_dir = tempfile.mkdtemp(prefix="scall-bench-env-")
    try:
        start = time.perf_counter()
        env = gym.make(env_id, cache_dir=cache_dir, **kwargs)
        make_s = time.perf_counter() - start
        core = env.unwrapped
        config = core.config
        start = time.perf_counter()
        stream = core.stream
        stream_s = time.perf_counter() - start
        start = time.perf_counter()
        _, info = env.reset(seed=seed)
        first_reset_s = time.perf_counter() - start
        segment0 = info["commit"]
        start = time.perf_counter()
        env.reset(seed=seed)
        second_reset_s = time.perf_counter() - start
        start = time.perf_counter()
        fresh = gym.make(env_id, cache_dir=cache_dir, **kwargs)
        fresh.reset(seed=seed)
        cached_reset_s = time.perf_counter() - start
        fresh.close()
        del fresh

        rng = np.random.default_rng(seed)
        records: list[dict[str, Any]] = []
        episode_resets: list[float] = []
        for i in range(steps):
            action = rng.uniform(-1.0, 1.0, size=3).astype(np.float32)
            start = time.perf_counter()
            _, reward, terminated, truncated, info = env.step(action)
            seconds = time.perf_counter() - start
            record: dict[str, Any] = {
                "step": i,
                "s": seconds,
                "segment": info["segment"],
                "trial": info["trial"],
                "reward": float(reward),
            }
            if "commit" in info:
                record["commit_segment"] = info["commit"]["segment"]
                record["commit_chunks"] = info["commit"]["chunks"]
            records.append(record)
            if terminated or truncated:
                start = time.perf_counter()
                env.reset(seed=seed)
                episode_resets.append(time.perf_counter() - start)
        search = [r["s"] for r in records if "commit_segment" not in r]
        commits = [
            {
                "step": r["step"],
                "s": r["s"],
                "segment": r["commit_segment"],
                "chunks": r["commit_chunks"],
            }
            for r in records
            if "commit_segment" in r
        ]
        result: dict[str, Any] = {
            "env": env_id,
            "base_model": config.base_model,
            "dataset": config.dataset,
            "n_segments": len(stream),
            "search": config.search,
            "search_steps": config.search_steps,
            "trial_batches": config.trial_batches,
            "batch_size": config.batch_size,
            "d_max": config.d_max,
            "device": str(config.device),
            "obs_dim": int(env.observation_space.shape[0]),
            "steps": steps,
            "make_s": make_s,
            "stream_s": stream_s,
            "first_reset_s": first_reset_s,
            "first_reset_total_s": stream_s + first_reset_s,
            "segment0_chunks": segment0["chunks"],
            "second_reset_s": second_reset_s,
            "cached_reset_s": cached_reset_s,
            "first_step_s": records[0]["s"] if records else None,
            **_stats(search, "search_step"),
            "commit_steps": commits,
            "episode_resets_s": episode_resets,
            "step_times_s": [r["s"] for r in records],
            "rewards": [r["reward"] for r in records],
            "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
        }
        env.close()
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    target = TARGETS.get(env_id)
    mean = result["search_step_mean_s"]
    result["target_s"] = target
    if target is not None and mean is not None:
        result["target_met"] = bool(
            mean < target if env_id == "Scall-Synthetic-v0" else mean <= target
        )
    return result


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Benchmarks every requested environment, each in a fresh subprocess.

    Args:
        args: Parsed arguments.

    Returns:
        ``{"envs": {id: result}, ...}`` with the machine's CPU count and load averages; a failed
        environment's result holds ``error`` (the tail of its stderr).
    """
    env = child_env(args.omp_wait_policy, args.threads)
    load_before = load_average()
    results: dict[str, Any] = {}
    for env_id in args.env:
        steps = args.steps if args.steps is not None else DEFAULT_STEPS.get(env_id, 12)
        kwargs = {"env_id": env_id, "steps": steps, "seed": args.seed, "data_dir": args.data_dir}
        start = time.perf_counter()
        try:
            child = run_child(bench_env, kwargs, env=env)
            results[env_id] = {**child.value, "peak_rss_mb": child.peak_rss_mb}
        except ChildError as exc:
            results[env_id] = {"env": env_id, "error": str(exc)}
        results[env_id]["wall_s"] = time.perf_counter() - start
    info = machine()
    return {
        "envs": results,
        "seed": args.seed,
        "cpus": info["cpus"],
        "cpus_usable": info["cpus_usable"],
        "loadavg_before": load_before,
        "loadavg_after": info["loadavg"],
    }


def _fmt(value: float | None) -> str:
    """Seconds with 3 decimals, or '-'."""
    return "-" if value is None else f"{value:.3f}"


def print_table(report: dict[str, Any]) -> None:
    """Prints one row per environment.

    Args:
        report: The output of :func:`run_benchmark`.
    """
    header = (
        f"{'env':<20} {'1st reset':>9} {'2nd':>7} {'cached':>7} {'steps':>5} {'mean':>7} "
        f"{'median':>7} {'max':>7} {'commit':>8} {'RSS MiB':>7}  target"
    )
    print(header)
    for env_id, r in report["envs"].items():
        if "error" in r:
            print(f"{env_id:<20} FAILED: {r['error'].strip().splitlines()[-1]}")
            continue
        commit = r["commit_steps"][0]["s"] if r["commit_steps"] else None
        target = r.get("target_s")
        verdict = "-" if target is None else ("ok" if r.get("target_met") else "MISSED")
        print(
            f"{env_id:<20} {_fmt(r['first_reset_total_s']):>9} {_fmt(r['second_reset_s']):>7} "
            f"{_fmt(r['cached_reset_s']):>7} {r['steps']:>5} "
            f"{_fmt(r['search_step_mean_s']):>7} {_fmt(r['search_step_median_s']):>7} "
            f"{_fmt(r['search_step_max_s']):>7} {_fmt(commit):>8} {r['peak_rss_mb']:>7.0f}  "
            f"{verdict} ({target} s)"
        )
    print(
        f"cpus {report['cpus']}, load average before {report['loadavg_before']}, "
        f"after {report['loadavg_after']}"
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the result.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    print_report(run_benchmark(args), as_json=args.json, table=print_table)


if __name__ == "__main__":
    main()
