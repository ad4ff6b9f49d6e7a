"""Reproduce the spec's reference table: uniform size 32, trained to convergence with warm start.

Trains the base model on segments ``0..N-1`` of MovieLens-1M (10-core, 10 segments), every entity
at size ``c`` (32), each segment warm-started from the previous segment's best weights, and
prints JSON with each segment's Recall@20, NDCG@20, best chunk, chunks run and wall time, beside
the authors' figures from ``shared/spec/SCALL.md``.

Example:
    python benchmarks/bench_reference.py --data-dir ../shared/data --segments 3
"""

from __future__ import annotations

import argparse
import json
import time

import scall_env  # noqa: F401  (OpenMP default before torch)
from scall_env.recsys import TrainConfig, make_model, train_to_convergence
from scall_env.sizing import UniformSizer, budget_params
from scall_env.stream import StreamConfig, load_stream

AUTHORS = {  # segment: (Recall@20, NDCG@20, wall time on 2 cores), authors' code
    0: (0.0726, 0.1510, 318.0),
    1: (0.0857, 0.1236, 395.0),
    2: (0.0585, 0.1416, 477.0),
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--data-dir", default=None, help="MovieLens-1M folder (default: $SCALL_DATA_DIR)"
    )
    parser.add_argument("--segments", type=int, default=3, help="segments to train (default: 3)")
    parser.add_argument(
        "--model",
        default="lightgcn",
        choices=("lightgcn", "mf"),
        help="base model (default: lightgcn)",
    )
    parser.add_argument("--size", type=float, default=32, help="uniform size c (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default: 0)")
    parser.add_argument("--device", default="auto", help="torch device (default: auto)")
    args = parser.parse_args()

    stream = load_stream("ml-1m", StreamConfig(k_core=10, n_segments=10), data_dir=args.data_dir)
    rows, previous = [], None
    for t in range(args.segments):
        segment = stream.segment(t)
        budget = budget_params("c", args.size, segment.n_users, segment.n_items)
        sizes = UniformSizer().sizes(None, segment.user_freq, segment.item_freq, budget)
        model = make_model(
            args.model,
            segment,
            sizes.user_sizes,
            sizes.item_sizes,
            seed=args.seed,
            device=args.device,
        )
        if previous is not None:
            model.warm_start(previous)
        start = time.perf_counter()
        result = train_to_convergence(model, segment, TrainConfig(), seed=args.seed)
        row = {
            "segment": t,
            "users": segment.n_users,
            "items": segment.n_items,
            "recall@20": round(result.metrics["recall@20"], 4),
            "ndcg@20": round(result.metrics["ndcg@20"], 4),
            "best_chunk": result.best_chunk,
            "chunks": result.chunks_run,
            "wall_s": round(time.perf_counter() - start, 1),
        }
        if t in AUTHORS:
            row["authors_recall@20"], row["authors_ndcg@20"], row["authors_wall_s"] = AUTHORS[t]
        rows.append(row)
        previous = model
    print(
        json.dumps(
            {"model": args.model, "size": args.size, "seed": args.seed, "segments": rows}, indent=2
        )
    )


if __name__ == "__main__":
    main()
