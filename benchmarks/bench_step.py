"""Time search trials of the SCALL environment: ``SearchCore.trial``, the env's own step.

A *trial* is what one environment step costs: :meth:`scall_env.search.SearchCore.trial` on
segment ``--segment`` of ``--n-segments`` (mean size ``c = --budget``, ``d_max`` 256, power-law
decision): sizes, a fresh model, ``--batches`` BPR batches of ``--batch-size`` triples from
scratch, and one evaluation (Recall/NDCG@20 over the segment's test users). The core is
configured through ``EnvConfig(base_model=...)`` exactly as ``gym.make`` configures it, and put on
the segment without training the earlier ones (``_common.place_at_segment``; a trial does not
depend on the committed model). Each model's trials run in a fresh subprocess
(``_common.run_child``), so its ``peak_rss_mb`` (the child's peak resident memory, stream
included) is its own; the parent also records ``getrusage(RUSAGE_CHILDREN)`` after each child.

Trials run at three kinds of action: the benchmark decision ``--decision`` (default 0.5 0.5 0.5;
best of ``--repeat``), the skewed decision 0.5 0.02 0.02 (the largest sizes, up to 85 on ML-1M
segment 5; best of ``--repeat``) and ``--random-actions`` uniform actions in ``[-1, 1]^3`` (the
env's mapping, seeded by ``--seed``; their mean).

Reported (seconds unless named otherwise): ``build_s`` (read the ratings and build the stream,
no cache), ``segment_s`` (materialise the segment), ``sizing_s`` (``SearchCore.sizes``) and the
sizes' max/mean, ``{model}_trial_s`` (best trial at the benchmark decision; every one in
``_all``), ``{model}_trial_skewed_s``, ``{model}_trial_random_s`` (mean; each in ``_all``),
``{model}_batch_s`` (the trial's training time less the trainer set-up, per batch; also
``_skewed`` and ``_random``), ``{model}_parts`` (the benchmark trial's calls of
``SearchCore.sizes``, ``SearchCore.new_model`` and the evaluation, timed as the trial makes
them; ``train_s`` the rest of the trial; the trial's ``fitness``), ``eval_s`` (best of 3
evaluations of the trained LightGCN model; LightGCN's evaluation includes the propagation),
``{model}_sample_s`` and ``{model}_train_step_s`` (the two halves of a batch, each timed alone
over ``--batches`` batches on the trained benchmark model: drawing it, and training on one drawn
batch served again), ``{model}_halves_ratio`` (``{model}_batch_s`` over their sum: about 1, as
the trainer's prefetch thread draws the next batch while this one trains; drawing in the
training thread instead made it 1.1 for MF on ML-100K), ``evaluator_build_s`` (once per segment;
the core caches it, so it is not part of a trial), ``{model}_process_warmup_s`` (the first
optimiser of a process imports ``torch._dynamo``, about 1.5 s, once per process: done before the
timed trials), ``peak_rss_mb`` (LightGCN child), ``torch_threads``, ``cpus`` and the load
average before and after (other jobs on the machine inflate the timings).

The floor of a LightGCN batch, measured in the same child at the trial's sizes:
``lightgcn_floor_s`` is the median over ``--floor-repeats`` (half before the benchmark trials,
half after) of one bare propagation forward and backward through the trial model's
:class:`~scall_env.recsys.PropagationPlan` (training's active-row products) plus one fused Adam
step over a vector of the trial's used parameters: what a batch cannot avoid. ``lightgcn_floor_
ratio`` is ``lightgcn_batch_s / lightgcn_floor_s``; ``lightgcn_floor_skewed_s`` and
``lightgcn_floor_ratio_skewed`` the same at the skewed decision. The ratio is what to compare
across machines and loads; absolute times move with both.

Shared machines: torch's OpenMP threads spin while they wait by default; when other processes
keep the cores busy, small ops then wait for descheduled threads and a batch can take 10-25x
longer. The trials run with ``OMP_WAIT_POLICY=PASSIVE`` by default (what importing ``scall_env``
before torch sets); ``--omp-wait-policy active`` or ``inherit`` compares the alternatives.

Example (prints JSON; a few minutes on 2 CPU cores)::

    python benchmarks/bench_step.py --dataset ml-1m --data-dir ../shared/data --json
"""

from __future__ import annotations

import argparse
import resource
from typing import Any

import torch
from _common import (
    child_env,
    int_at_least,
    load_average,
    machine,
    make_parser,
    print_report,
    run_child,
    timed,
)
from _trials import SKEWED, trial_timings

from scall_env.config import EnvConfig
from scall_env.search import SearchCore
from scall_env.sizing import SizeDecision

MODEL_NAMES: tuple[str, ...] = ("lightgcn", "mf")
TARGETS: dict[str, float] = {
    "lightgcn_trial_s": 30.0,
    "lightgcn_floor_ratio": 1.5,
    "mf_trial_s": 1.0,
    "eval_s": 0.3,
    "peak_rss_mb": 2048.0,
}
"""Targets on 2 CPU cores (``peak_rss_mb``: strictly below)."""
PART_KEYS = ("sizing_s", "model_s", "trainer_setup_s", "train_s", "trial_eval_s", "fitness")
CHILD_KEYS = (
    "trial_s", "trial_s_all", "batch_s", "eval_s", "process_warmup_s", "trial_skewed_s",
    "batch_skewed_s", "size_max_skewed", "trial_random_s", "batch_random_s", "trial_random_s_all",
    "size_max_random_all", "floor_s", "floor_s_all", "floor_ratio", "floor_skewed_s",
    "floor_ratio_skewed", "sample_s", "train_step_s", "halves_ratio",
)  # fmt: skip
"""What each model's child reports under ``{model}_`` (floors: LightGCN only)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``None``: ``sys.argv[1:]``)."""
    parser = make_parser(__doc__)
    parser.add_argument(
        "--segment", type=int_at_least(0), default=5, help="segment searched (default: 5)"
    )
    parser.add_argument(
        "--batches", type=int_at_least(1), default=200, help="batches per trial (default: 200)"
    )
    parser.add_argument(
        "--batch-size",
        type=int_at_least(1),
        default=10_000,
        help="triples a batch (default: 10000)",
    )
    parser.add_argument(
        "--budget", type=float, default=32, help="budget c, the mean embedding size (default: 32)"
    )
    parser.add_argument(
        "--d-max", type=int_at_least(1), default=256, help="largest size (default: 256)"
    )
    parser.add_argument(
        "--decision",
        "--action",
        dest="decision",
        type=float,
        nargs=3,
        default=(0.5, 0.5, 0.5),
        metavar=("RATIO", "ALPHA_USER", "ALPHA_ITEM"),
        help="the SizeDecision, each in (0, 1) (default: 0.5 0.5 0.5)",
    )
    parser.add_argument(
        "--repeat",
        type=int_at_least(1),
        default=1,
        help="repetitions of the stream build and of each trial; the best is reported and "
        "every value listed (default: 1)",
    )
    for flag, low, default, text in (
        ("--random-actions", 0, 10, "random actions whose trials are averaged"),
        ("--floor-repeats", 2, 20, "repetitions of the LightGCN floor; the median is reported"),
    ):
        parser.add_argument(
            flag, type=int_at_least(low), default=default, help=f"{text} (default: {default})"
        )
    parser.add_argument(
        "--models",
        nargs="+",
        choices=MODEL_NAMES,
        default=list(MODEL_NAMES),
        help="base models whose trials run (default: lightgcn mf)",
    )
    args = parser.parse_args(argv)
    if args.segment >= args.n_segments:
        parser.error(f"--segment must lie in [0, {args.n_segments})")
    try:
        SizeDecision(*args.decision)
    except ValueError as exc:
        parser.error(f"--decision: {exc}")
    return args


def env_kwargs(args: argparse.Namespace, base_model: str) -> dict[str, Any]:
    """The ``EnvConfig`` keywords (JSON-ready) of a trial of ``base_model``."""
    return {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "n_segments": args.n_segments,
        "k_core": args.k_core,
        "budget": args.budget,
        "d_max": args.d_max,
        "base_model": base_model,
        "trial_batches": args.batches,
        "batch_size": args.batch_size,
        "device": args.device,
        "use_cache": False,
    }


def _stream_and_sizing(args: argparse.Namespace) -> dict[str, Any]:
    """Times the stream build (``--repeat`` times, no cache), the segment and the sizing."""
    builds = []
    for _ in range(args.repeat):
        core = SearchCore(EnvConfig(**env_kwargs(args, args.models[0])))
        builds.append(timed(lambda core=core: core.stream)[1])
    segment, segment_s = timed(core.segment, args.segment)
    decision = SizeDecision(*args.decision)
    sizing = [timed(core.sizes, decision, segment) for _ in range(max(args.repeat, 3))]
    sizes = sizing[-1][0]
    return {
        "n_users": segment.n_users,
        "n_items": segment.n_items,
        "train_edges": int(segment.train_graph.nnz),
        "test_users": int(len(segment.test_users)),
        "build_s": min(builds),
        "build_s_all": builds,
        "segment_s": segment_s,
        "sizing_s": min(seconds for _, seconds in sizing),
        "size_max": int(max(sizes.user_sizes.max(), sizes.item_sizes.max())),
        "size_mean": sizes.params_used / (segment.n_users + segment.n_items),
        "user_size_max": int(sizes.user_sizes.max()),
        "user_size_mean": float(sizes.user_sizes.mean()),
        "item_size_max": int(sizes.item_sizes.max()),
        "item_size_mean": float(sizes.item_sizes.mean()),
        "params_used": int(sizes.params_used),
        "budget_params": int(sizes.budget_params),
    }


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Times the stream and the sizing here, then each model's trials in a fresh subprocess.

    Args:
        args: Parsed arguments.

    Returns:
        The JSON-ready report.
    """
    load_before = load_average()
    report: dict[str, Any] = {
        "dataset": args.dataset,
        "segment": args.segment,
        "n_segments": args.n_segments,
        "batches": args.batches,
        "batch_size": args.batch_size,
        "budget_c": args.budget,
        "d_max": args.d_max,
        "action": list(args.decision),
        "action_skewed": list(SKEWED),
        "random_actions": args.random_actions,
        **_stream_and_sizing(args),
    }
    env = child_env(args.omp_wait_policy, args.threads)
    for name in args.models:
        kwargs = {
            "config": env_kwargs(args, name),
            "segment": args.segment,
            "decision": list(args.decision),
            "repeat": args.repeat,
            "seed": args.seed,
            "random_actions": args.random_actions,
            "floor_repeats": args.floor_repeats,
        }
        child = run_child(trial_timings, kwargs, env=env)
        value = child.value
        for key in CHILD_KEYS:
            if key in value:
                report[f"{name}_{key}"] = value[key]
        report[f"{name}_peak_rss_mb"] = child.peak_rss_mb
        report[f"{name}_rss_children_mb"] = (
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        )
        report[f"{name}_parts"] = {
            **{key: value[key] for key in PART_KEYS},
            "rss_before_trial_mb": value["rss_before_trial_mb"],
        }
        report["evaluator_build_s"] = value["evaluator_build_s"]
        for key in ("device", "torch_threads", "omp_wait_policy"):
            report[key] = value[key]
    if "lightgcn" in args.models:
        report["eval_s"] = report["lightgcn_eval_s"]
        report["peak_rss_mb"] = report["lightgcn_peak_rss_mb"]
    info = machine()
    report.update(cpus=info["cpus"], cpus_usable=info["cpus_usable"])
    report["torch_version"] = torch.__version__
    report["loadavg_before"], report["loadavg_after"] = load_before, info["loadavg"]
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
    """Prints a short human-readable summary of :func:`run_benchmark`'s report."""
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
            random_s = report[f"{name}_trial_random_s"]
            rows += [
                (f"{name} batch", f"{report[f'{name}_batch_s']:.4f} s"),
                (
                    f"{name} batch halves: draw / train / ratio",
                    f"{report[f'{name}_sample_s']:.4f} s / {report[f'{name}_train_step_s']:.4f} s"
                    f" / {report[f'{name}_halves_ratio']:.2f}",
                ),
                (f"{name} eval", f"{report[f'{name}_eval_s']:.4f} s"),
                (f"{name} trial", f"{report[f'{name}_trial_s']:.2f} s"),
                (f"{name} trial, skewed", f"{report[f'{name}_trial_skewed_s']:.2f} s"),
                (f"{name} trial, random (mean)", "-" if random_s is None else f"{random_s:.2f} s"),
                (f"{name} peak RSS", f"{report[f'{name}_peak_rss_mb']:.0f} MiB"),
            ]
            if f"{name}_floor_s" in report:
                rows += [
                    (
                        f"{name} floor / batch ratio",
                        f"{report[f'{name}_floor_s']:.4f} s / {report[f'{name}_floor_ratio']:.2f}"
                        f" (skewed {report[f'{name}_floor_ratio_skewed']:.2f})",
                    )
                ]
    rows += [
        ("evaluator build", f"{report['evaluator_build_s']:.3f} s"),
        (
            "device / torch threads / cpus",
            f"{report['device']} / {report['torch_threads']} / {report['cpus']}",
        ),
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
    """Runs the benchmark and prints the result (``argv`` ``None``: ``sys.argv[1:]``)."""
    args = parse_args(argv)
    print_report(run_benchmark(args), as_json=args.json, table=print_table)


if __name__ == "__main__":
    main()
