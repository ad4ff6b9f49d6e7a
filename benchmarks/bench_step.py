"""Time one search step of the SCALL protocol on a real stream, piece by piece.

A *trial* is what one environment step costs: embedding sizes from a power-law action on segment
``--segment`` of ``--n-segments`` (mean size ``c = --budget``, ``d_max`` 256), a fresh model,
``--batches`` BPR batches of 10,000 triples from scratch, and one evaluation (Recall/NDCG@20 over
the segment's test users). Each model's trial runs in its own fresh subprocess, so its
``peak_rss_mb`` (the child's peak resident memory, stream included) is not mixed with the other
model's; the parent also records ``getrusage(RUSAGE_CHILDREN)`` after each child.

Reported (seconds unless named otherwise): ``build_s`` (read the ratings and build the stream, no
cache), ``segment_s`` (materialise the segment), ``sizing_s`` and the sizes' max/mean,
``{model}_batch_s`` (mean of the trial's batches), ``{model}_trial_s`` with its parts,
``eval_s`` (best of 3 evaluations of the trained LightGCN model; LightGCN's evaluation includes
the propagation), ``evaluator_build_s`` (once per segment; the environment caches it, so it is not
part of a trial), ``{model}_process_warmup_s`` (the first optimiser of a process imports
``torch._dynamo``, about 1.5 s, once per process: done before the timed trials), ``peak_rss_mb``
(LightGCN trial), ``torch_threads``, ``cpus`` and the load average before and after (other jobs on
the machine inflate the timings).

Shared machines: torch's OpenMP threads spin while they wait by default; when other processes
keep the cores busy, small ops then wait for descheduled threads and a batch can take 10-25x
longer. The trials run with ``OMP_WAIT_POLICY=PASSIVE`` by default (what importing ``scall_env``
before torch sets); ``--omp-wait-policy active`` or ``inherit`` compares the alternatives.

Example (prints JSON; about a minute on 2 CPU cores)::

    python benchmarks/bench_step.py --dataset ml-1m --data-dir ../shared/data --json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
import torch
from _common import rounded

from scall_env.data import load_interactions
from scall_env.recsys import Evaluator, TrainConfig, Trainer, make_model
from scall_env.sizing import DistributionSizer, budget_params
from scall_env.stream import Stream, StreamConfig, build_stream

MODEL_NAMES: tuple[str, ...] = ("lightgcn", "mf")
TARGETS: dict[str, float] = {
    "lightgcn_trial_s": 30.0,
    "mf_trial_s": 3.0,
    "eval_s": 0.3,
    "peak_rss_mb": 2048.0,
}
"""Targets on 2 CPU cores (``peak_rss_mb``: strictly below)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).

    Returns:
        The parsed arguments.
    """
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", default="ml-1m", help="dataset name of load_interactions (default: ml-1m)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="folder holding the dataset (default: $SCALL_DATA_DIR)"
    )
    parser.add_argument(
        "--segment", type=int, default=5, help="segment index the trial runs on (default: 5)"
    )
    parser.add_argument(
        "--n-segments", type=int, default=10, help="equal-count segments (default: 10)"
    )
    parser.add_argument("--k-core", type=int, default=10, help="k-core filter (default: 10)")
    parser.add_argument(
        "--batches", type=int, default=200, help="training batches per trial (default: 200)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=10_000, help="BPR triples per batch (default: 10000)"
    )
    parser.add_argument(
        "--budget", type=float, default=32, help="budget c, the mean embedding size (default: 32)"
    )
    parser.add_argument("--d-max", type=int, default=256, help="largest size (default: 256)")
    parser.add_argument(
        "--action",
        type=float,
        nargs=3,
        default=(0.5, 0.5, 0.5),
        metavar=("RATIO", "ALPHA_USER", "ALPHA_ITEM"),
        help="power-law decision, each in (0, 1) (default: 0.5 0.5 0.5)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="repetitions of the stream build and of each trial; the best is reported and "
        "every value listed (default: 1)",
    )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODEL_NAMES,
        default=list(MODEL_NAMES),
        help="models whose trials run (default: lightgcn mf)",
    )
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (default 0: torch's default)"
    )
    parser.add_argument(
        "--omp-wait-policy",
        choices=("inherit", "passive", "active"),
        default="passive",
        help="OMP_WAIT_POLICY of the trial subprocesses (default: passive, what importing "
        "scall_env before torch sets; 'inherit' keeps this shell's). With the spinning "
        "policy any other busy process on a 2-core machine can slow small torch ops many times",
    )
    parser.add_argument("--seed", type=int, default=0, help="model and sampler seed (default: 0)")
    parser.add_argument(
        "--trial-only",
        choices=MODEL_NAMES,
        default=None,
        help="run only this model's trial in this process and print its JSON (what the "
        "per-model subprocesses run)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    for name in ("batches", "batch_size", "repeat", "n_segments", "k_core", "d_max"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if not 0 <= args.segment < args.n_segments:
        parser.error(f"--segment must lie in [0, {args.n_segments})")
    return args


def _timed(fn: Any, *fn_args: Any, **fn_kwargs: Any) -> tuple[Any, float]:
    """Returns ``(fn(*fn_args, **fn_kwargs), wall-clock seconds)``."""
    start = time.perf_counter()
    value = fn(*fn_args, **fn_kwargs)
    return value, time.perf_counter() - start


def _rss_mb(who: int) -> float:
    """Peak resident memory in MiB of ``who`` (``RUSAGE_SELF`` or ``RUSAGE_CHILDREN``)."""
    return resource.getrusage(who).ru_maxrss / 1024  # Linux reports KiB


def _build(args: argparse.Namespace) -> tuple[Stream, float]:
    """Reads the ratings and builds the stream without any cache."""
    config = StreamConfig(k_core=args.k_core, n_segments=args.n_segments)
    start = time.perf_counter()
    stream = build_stream(load_interactions(args.dataset, data_dir=args.data_dir), config)
    return stream, time.perf_counter() - start


def run_trial(args: argparse.Namespace) -> dict[str, Any]:
    """Times ``args.repeat`` trials of ``args.trial_only`` in this process.

    Args:
        args: Parsed arguments (``trial_only`` names the model).

    Returns:
        JSON-ready timings of the best trial, every trial's time and this process's peak memory.
    """
    name = args.trial_only
    stream, build_s = _build(args)
    segment, segment_s = _timed(stream.segment, args.segment)
    evaluator, evaluator_build_s = _timed(Evaluator, segment)
    rss_before_mb = _rss_mb(resource.RUSAGE_SELF)
    config = TrainConfig(batch_size=args.batch_size)
    budget = budget_params("c", args.budget, segment.n_users, segment.n_items)
    sizer = DistributionSizer("powerlaw")
    # The first optimiser of a process imports torch._dynamo (about 1.5 s): a one-off cost that
    # an environment pays in its first reset, not in every trial, so it is timed apart.
    warm_sizes = np.ones(segment.n_users, dtype=np.int64), np.ones(segment.n_items, dtype=np.int64)
    warm_model = make_model(name, segment, *warm_sizes, d_max=args.d_max, device="cpu")
    _, warmup_s = _timed(Trainer, warm_model, segment, config)
    del warm_model
    trials: list[dict[str, float]] = []
    model = None
    for rep in range(args.repeat):
        start = time.perf_counter()
        sizes, sizing_s = _timed(
            sizer.sizes,
            args.action,
            segment.user_freq,
            segment.item_freq,
            budget,
            d_max=args.d_max,
        )
        model, model_s = _timed(
            make_model,
            name,
            segment,
            sizes.user_sizes,
            sizes.item_sizes,
            d_max=args.d_max,
            seed=args.seed + rep,
            device="cpu",
        )
        trainer, trainer_s = _timed(Trainer, model, segment, config)
        losses, train_s = _timed(trainer.run, args.batches)
        metrics, trial_eval_s = _timed(evaluator.evaluate, model)
        trials.append(
            {
                "trial_s": time.perf_counter() - start,
                "sizing_s": sizing_s,
                "model_s": model_s,
                "trainer_setup_s": trainer_s,
                "train_s": train_s,
                "batch_s": train_s / args.batches,
                "trial_eval_s": trial_eval_s,
                "final_loss": float(losses[-1]),
                "fitness": float(metrics["fitness"]),
            }
        )
    peak_rss_mb = _rss_mb(resource.RUSAGE_SELF)  # before the extra evaluations below
    eval_s = min(_timed(evaluator.evaluate, model)[1] for _ in range(3))
    best = min(trials, key=lambda trial: trial["trial_s"])
    return {
        "model": name,
        **best,
        "trial_s_all": [trial["trial_s"] for trial in trials],
        "eval_s": eval_s,
        "evaluator_build_s": evaluator_build_s,
        "process_warmup_s": warmup_s,
        "build_s": build_s,
        "segment_s": segment_s,
        "peak_rss_mb": peak_rss_mb,
        "rss_before_trial_mb": rss_before_mb,
        "size_max": int(max(sizes.user_sizes.max(), sizes.item_sizes.max())),
        "size_mean": sizes.params_used / (segment.n_users + segment.n_items),
        "params_used": sizes.params_used,
        "budget_params": sizes.budget_params,
        "torch_threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
    }


def _child_command(args: argparse.Namespace, name: str) -> list[str]:
    """Command line of the subprocess running ``name``'s trials."""
    command = [sys.executable, os.path.abspath(__file__), "--trial-only", name, "--json"]
    for flag in ("dataset", "segment", "n_segments", "k_core", "batches", "batch_size", "budget"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    command += ["--d-max", str(args.d_max), "--repeat", str(args.repeat), "--seed", str(args.seed)]
    command += ["--threads", str(args.threads), "--action", *map(str, args.action)]
    if args.data_dir is not None:
        command += ["--data-dir", str(args.data_dir)]
    return command


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Builds the stream, times the sizing, then each model's trials in fresh subprocesses.

    Args:
        args: Parsed arguments.

    Returns:
        The JSON-ready report.
    """
    load_before = os.getloadavg()
    builds = [_build(args) for _ in range(args.repeat)]
    stream = builds[-1][0]
    segment, segment_s = _timed(stream.segment, args.segment)
    budget = budget_params("c", args.budget, segment.n_users, segment.n_items)
    sizer = DistributionSizer("powerlaw")
    sizing_s = []
    for _ in range(max(args.repeat, 3)):
        sizes, seconds = _timed(
            sizer.sizes,
            args.action,
            segment.user_freq,
            segment.item_freq,
            budget,
            d_max=args.d_max,
        )
        sizing_s.append(seconds)
    report: dict[str, Any] = {
        "dataset": args.dataset,
        "segment": args.segment,
        "n_segments": args.n_segments,
        "n_users": segment.n_users,
        "n_items": segment.n_items,
        "train_edges": int(segment.train_graph.nnz),
        "test_users": int(len(segment.test_users)),
        "batches": args.batches,
        "batch_size": args.batch_size,
        "budget_c": args.budget,
        "d_max": args.d_max,
        "action": list(args.action),
        "build_s": min(seconds for _, seconds in builds),
        "build_s_all": [seconds for _, seconds in builds],
        "segment_s": segment_s,
        "sizing_s": min(sizing_s),
        "size_max": int(max(sizes.user_sizes.max(), sizes.item_sizes.max())),
        "size_mean": sizes.params_used / (segment.n_users + segment.n_items),
        "user_size_max": int(sizes.user_sizes.max()),
        "user_size_mean": float(sizes.user_sizes.mean()),
        "item_size_max": int(sizes.item_sizes.max()),
        "item_size_mean": float(sizes.item_sizes.mean()),
        "params_used": sizes.params_used,
        "budget_params": sizes.budget_params,
    }
    del builds, stream, segment
    env = dict(os.environ)
    if args.omp_wait_policy != "inherit":
        env["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()
    for name in args.models:
        completed = subprocess.run(
            _child_command(args, name), check=True, capture_output=True, text=True, env=env
        )
        child = json.loads(completed.stdout)
        report[f"{name}_trial_s"] = child["trial_s"]
        report[f"{name}_trial_s_all"] = child["trial_s_all"]
        report[f"{name}_batch_s"] = child["batch_s"]
        report[f"{name}_eval_s"] = child["eval_s"]
        report[f"{name}_peak_rss_mb"] = child["peak_rss_mb"]
        report[f"{name}_rss_children_mb"] = _rss_mb(resource.RUSAGE_CHILDREN)
        report[f"{name}_parts"] = {
            key: child[key]
            for key in (
                "sizing_s",
                "model_s",
                "trainer_setup_s",
                "train_s",
                "trial_eval_s",
                "rss_before_trial_mb",
                "fitness",
                "final_loss",
            )
        }
        report["evaluator_build_s"] = child["evaluator_build_s"]
        report[f"{name}_process_warmup_s"] = child["process_warmup_s"]
        report["torch_threads"] = child["torch_threads"]
        report["omp_wait_policy"] = child["omp_wait_policy"]
    if "lightgcn" in args.models:
        report["eval_s"] = report["lightgcn_eval_s"]
        report["peak_rss_mb"] = report["lightgcn_peak_rss_mb"]
    report["cpus"] = os.cpu_count()
    report["cpus_usable"] = len(os.sched_getaffinity(0))
    report["torch_version"] = torch.__version__
    report["loadavg_before"] = [round(v, 2) for v in load_before]
    report["loadavg_after"] = [round(v, 2) for v in os.getloadavg()]
    report["targets"] = {
        key: {
            "target": target,
            "value": report[key],
            "met": bool(report[key] < target if key == "peak_rss_mb" else report[key] <= target),
        }
        for key, target in TARGETS.items()
        if key in report
    }
    return report


def print_table(report: dict[str, Any]) -> None:
    """Prints a short human-readable summary of the report.

    Args:
        report: The output of :func:`run_benchmark`.
    """
    print(
        f"{report['dataset']} segment {report['segment']}/{report['n_segments']}: "
        f"{report['n_users']} users, {report['n_items']} items, {report['train_edges']} edges; "
        f"{report['batches']} batches of {report['batch_size']}, c={report['budget_c']}, "
        f"d_max={report['d_max']}"
    )
    rows = [
        ("build stream (no cache)", f"{report['build_s']:.3f} s"),
        ("materialise segment", f"{report['segment_s']:.3f} s"),
        (
            "sizing",
            f"{report['sizing_s'] * 1e3:.1f} ms (max {report['size_max']}, "
            f"mean {report['size_mean']:.2f})",
        ),
    ]
    for name in MODEL_NAMES:
        if f"{name}_trial_s" in report:
            rows += [
                (f"{name} batch", f"{report[f'{name}_batch_s']:.4f} s"),
                (f"{name} eval", f"{report[f'{name}_eval_s']:.4f} s"),
                (f"{name} trial", f"{report[f'{name}_trial_s']:.2f} s"),
                (f"{name} peak RSS", f"{report[f'{name}_peak_rss_mb']:.0f} MiB"),
            ]
    rows += [
        ("evaluator build", f"{report['evaluator_build_s']:.3f} s"),
        ("torch threads / cpus", f"{report['torch_threads']} / {report['cpus']}"),
        ("OMP_WAIT_POLICY", report["omp_wait_policy"]),
        ("load avg before / after", f"{report['loadavg_before']} / {report['loadavg_after']}"),
    ]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")
    for key, entry in report["targets"].items():
        verdict = "ok" if entry["met"] else "MISSED"
        print(f"  target {key}: {entry['value']:.3f} vs {entry['target']}  {verdict}")


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark (or one model's trial with ``--trial-only``) and prints the result.

    Args:
        argv: Arguments (``None``: ``sys.argv[1:]``).
    """
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    report = run_trial(args) if args.trial_only else run_benchmark(args)
    if args.json or args.trial_only:
        print(json.dumps(rounded(report), indent=None if args.trial_only else 2))
    else:
        print_table(report)


if __name__ == "__main__":
    main()
