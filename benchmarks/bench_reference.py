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

Example (segment 0 alone takes a few minutes on 2 CPU cores)::

    python benchmarks/bench_reference.py --data-dir ../shared/data --segments 3
"""

from __future__ import annotations

import json
import time
from typing import Any

from _common import child_env, int_at_least, load_average, make_parser, rounded, run_child, timed

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
        }
        if authors and t in AUTHORS:
            row["authors_recall@20"], row["authors_ndcg@20"], row["authors_wall_s"] = AUTHORS[t]
        rows.append(row)
    return {"stream_s": stream_s, "segments": rows}


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
    args = parser.parse_args(argv)
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
    child = run_child(
        reference_table,
        {
            "config": config,
            "segments": args.segments,
            "seed": args.seed,
            # the authors' figures are for the spec's MovieLens-1M stream
            "authors": (args.dataset, args.n_segments, args.k_core) == ("ml-1m", 10, 10),
        },
        env=child_env(args.omp_wait_policy, args.threads),
    )
    report = {
        "dataset": args.dataset,
        "model": args.model,
        "size": args.size,
        "seed": args.seed,
        **child.value,
        "peak_rss_mb": child.peak_rss_mb,
        "wall_s": child.wall_s,
        "loadavg_before": load_before,
        "loadavg_after": load_average(),
    }
    print(json.dumps(rounded(report), indent=2))


if __name__ == "__main__":
    main()
