"""Reproduce the spec's reference table through the search core: uniform sizes, warm start.

Runs :class:`scall_env.search.SearchCore` with ``EnvConfig(sizer=UniformSizer(), budget=c,
use_cache=False)`` on MovieLens-1M (10-core, 10 segments by default): ``start(seed)`` trains
segment 0 to convergence, then ``commit(None, seed, seed)`` warm-starts and trains each segment
``1..N-1`` to convergence, exactly as the environment commits. Every entity has size ``c`` (32).
Prints JSON with each segment's users, items, Recall@20, NDCG@20, chunks run (and best chunk
when the core's record has it), reference fitness and wall time, beside the authors' figures
from ``shared/spec/SCALL.md``, plus the stream build time and the child's peak memory. The run
happens in a fresh subprocess (``_common.run_child``) with ``--omp-wait-policy`` and
``--threads`` applied.

With ``--seeds`` several seeds run one after another (each in its own subprocess) and the
report gains the mean and standard deviation over seeds; ``--output DIR`` also writes
``DIR/chunks.csv`` (one row per seed, segment and chunk: Recall@20, NDCG@20, fitness, mean
training loss, learning rate), ``DIR/curves.png`` (those curves, mean over seeds with the seeds'
range) and ``DIR/reference.json`` (the report).

Example (about 25 s a segment on 2 CPU cores)::

    python benchmarks/bench_reference.py --data-dir ../shared/data --segments 3
    python benchmarks/bench_reference.py --data-dir ../shared/data --segments 3 \
        --seeds 0 1 2 --output results/reference
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
from _common import child_env, int_at_least, load_average, make_parser, rounded, run_child, timed
from matplotlib.figure import Figure

from scall_env.config import EnvConfig
from scall_env.search import SearchCore
from scall_env.sizing import UniformSizer

AUTHORS = {  # segment: (Recall@20, NDCG@20, wall time on 2 cores), authors' code
    0: (0.0726, 0.1510, 318.0),
    1: (0.0857, 0.1236, 395.0),
    2: (0.0585, 0.1416, 477.0),
}
OPTIONAL_RECORD_KEYS = ("best_chunk", "converged")
"""Record keys reported when the core's record has them."""


def reference_table(
    config: dict[str, Any], segments: int, seed: int, authors: bool = False
) -> dict[str, Any]:
    """Trains segments ``0..segments-1`` through ``SearchCore`` with uniform sizes.

    Args:
        config: ``EnvConfig`` keywords (the uniform sizer is added here).
        segments: Segments to train (at most the stream's).
        seed: Seed of segment 0 and of every commit's model and training.
        authors: Add the authors' figures to their segments' rows.

    Returns:
        ``{"stream_s": ..., "segments": [one row per segment]}`` (JSON-ready).
    """
    core = SearchCore(EnvConfig(**config, sizer=UniformSizer()))
    _, stream_s = timed(lambda: core.stream)
    if not 1 <= segments <= core.n_segments:
        raise ValueError(f"segments must lie in [1, {core.n_segments}], got {segments}")
    rows = []
    for t in range(segments):
        start = time.perf_counter()
        record = core.start(seed) if t == 0 else core.commit(None, seed, seed)
        wall_s = time.perf_counter() - start
        users, items = core.stream.entity_counts(t)
        row: dict[str, Any] = {
            "segment": record["segment"],
            "users": int(users),
            "items": int(items),
            "recall@20": record["recall@20"],
            "ndcg@20": record["ndcg@20"],
            **{key: record[key] for key in OPTIONAL_RECORD_KEYS if key in record},
            "chunks": record["chunks"],
            "reference_fitness": record["reference_fitness"],
            "params_used": record["params_used"],
            "budget_params": record["budget_params"],
            "wall_s": wall_s,
            "chunk_curves": _curves(core),
        }
        if authors and t in AUTHORS:
            row["authors_recall@20"], row["authors_ndcg@20"], row["authors_wall_s"] = AUTHORS[t]
        rows.append(row)
    return {"stream_s": stream_s, "segments": rows}


def _curves(core: SearchCore) -> list[dict[str, float]]:
    """Per-chunk Recall@20, NDCG@20, fitness, loss and learning rate of the last training."""
    result = core.last_convergence
    if result is None:
        return []
    return [
        {
            "chunk": chunk,
            "recall@20": metrics["recall@20"],
            "ndcg@20": metrics["ndcg@20"],
            "fitness": metrics["fitness"],
            "loss": loss,
            "lr": lr,
        }
        for chunk, (metrics, loss, lr) in enumerate(
            zip(result.chunk_metrics, result.losses, result.lrs, strict=True)
        )
    ]


def write_outputs(reports: list[dict[str, Any]], folder: Path) -> pd.DataFrame:
    """``chunks.csv`` and ``curves.png`` of one report per seed; returns the chunk table."""
    rows = [
        {"seed": report["seed"], "segment": row["segment"], **point}
        for report in reports
        for row in report["segments"]
        for point in row["chunk_curves"]
    ]
    table = pd.DataFrame(rows)
    folder.mkdir(parents=True, exist_ok=True)
    table.to_csv(folder / "chunks.csv", index=False)
    metrics = ("recall@20", "ndcg@20", "loss")
    figure = Figure(figsize=(4 * len(metrics), 3.2), layout="constrained")
    for ax, metric in zip(figure.subplots(1, len(metrics)), metrics, strict=True):
        for segment, part in table.groupby("segment"):
            stats = part.groupby("chunk")[metric].agg(["mean", "min", "max"])
            (line,) = ax.plot(stats.index, stats["mean"], marker="o", label=f"D{segment}")
            ax.fill_between(stats.index, stats["min"], stats["max"], alpha=0.2)
            if metric != "loss" and segment in AUTHORS:
                authors = AUTHORS[segment][0 if metric == "recall@20" else 1]
                ax.axhline(authors, ls=":", lw=1.2, color=line.get_color())
        ax.set(xlabel="chunk (200 batches)", ylabel=metric)
        ax.legend(fontsize="small")
    figure.suptitle("uniform size 32, warm start: mean over seeds, range shaded; dotted: authors")
    figure.savefig(folder / "curves.png", dpi=110)
    return table


def _seed_summary(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean and std over seeds of each segment's Recall@20, NDCG@20, chunks and best chunk."""
    frame = pd.DataFrame([row for report in reports for row in report["segments"]])
    keys = [k for k in ("recall@20", "ndcg@20", "chunks", "best_chunk") if k in frame]
    stats = frame.groupby("segment")[keys].agg(["mean", "std"])
    return [
        {
            "segment": int(seg),
            **{f"{k}_{s}": float(stats.loc[seg, (k, s)]) for k in keys for s in ("mean", "std")},
        }
        for seg in stats.index
    ]


def main(argv: list[str] | None = None) -> None:
    """Runs the reference table in a fresh subprocess and prints JSON."""
    parser = make_parser(
        __doc__,
        (
            "dataset",
            "data_dir",
            "n_segments",
            "k_core",
            "seed",
            "device",
            "threads",
            "omp_wait_policy",
        ),
    )
    parser.add_argument(
        "--segments", type=int_at_least(1), default=3, help="segments to train (default: 3)"
    )
    parser.add_argument(
        "--model",
        default="lightgcn",
        choices=("lightgcn", "mf"),
        help="base model (default: lightgcn)",
    )
    parser.add_argument("--size", type=float, default=32, help="uniform size c (default: 32)")
    parser.add_argument(
        "--seeds",
        type=int_at_least(0),
        nargs="+",
        default=None,
        help="several seeds, one run each (default: --seed alone)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="folder for chunks.csv, curves.png, JSON"
    )
    args = parser.parse_args(argv)
    if not (math.isfinite(args.size) and args.size > 0):
        parser.error(f"--size must be a finite number > 0, got {args.size}")
    if args.segments > args.n_segments:
        parser.error(f"--segments must not exceed --n-segments ({args.n_segments})")
    config = {
        "dataset": args.dataset,
        "data_dir": args.data_dir,
        "n_segments": args.n_segments,
        "k_core": args.k_core,
        "base_model": args.model,
        "budget": args.size,
        "device": args.device,
        "use_cache": False,
    }
    load_before = load_average()
    reports = []
    for seed in args.seeds or [args.seed]:
        child = run_child(
            reference_table,
            {
                "config": config,
                "segments": args.segments,
                "seed": seed,
                # the authors' figures are for the spec's MovieLens-1M stream
                "authors": (args.dataset, args.n_segments, args.k_core) == ("ml-1m", 10, 10),
            },
            env=child_env(args.omp_wait_policy, args.threads),
        )
        reports.append(
            {"seed": seed, **child.value, "peak_rss_mb": child.peak_rss_mb, "wall_s": child.wall_s}
        )
    report = {
        "dataset": args.dataset,
        "model": args.model,
        "size": args.size,
        "runs": reports if len(reports) > 1 else None,
        **(reports[0] if len(reports) == 1 else {"over_seeds": _seed_summary(reports)}),
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
    }
    report = {key: value for key, value in report.items() if value is not None}
    text = json.dumps(rounded(report), indent=2)
    if args.output is not None:
        write_outputs(reports, args.output)
        (args.output / "reference.json").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
