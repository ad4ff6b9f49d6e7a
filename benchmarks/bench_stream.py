"""Time building a stream from the raw file, loading it from the cache, and materialising segments.

Prints JSON. Example:
    python benchmarks/bench_stream.py --dataset ml-1m --data-dir ../shared/data
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

from _common import int_at_least, make_parser

from scall_env.data import load_interactions
from scall_env.stream import StreamConfig, build_stream, load_stream


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``None``: ``sys.argv[1:]``)."""
    parser = make_parser(__doc__, ("dataset", "data_dir", "n_segments", "k_core"))
    parser.add_argument(
        "--repeat",
        type=int_at_least(1),
        default=3,
        help="repetitions; the best is reported (default: 3)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints its JSON."""
    args = parse_args(argv)
    config = StreamConfig(k_core=args.k_core, n_segments=args.n_segments)

    read_s, build_s, cache_s, segments_s = [], [], [], []
    for _ in range(args.repeat):
        start = time.perf_counter()
        interactions = load_interactions(args.dataset, data_dir=args.data_dir)
        read_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        stream = build_stream(interactions, config)
        build_s.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as cache_dir:
            load_stream(args.dataset, config, data_dir=args.data_dir, cache_dir=cache_dir)
            start = time.perf_counter()
            cached = load_stream(args.dataset, config, data_dir=args.data_dir, cache_dir=cache_dir)
            cache_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        for _segment in cached:
            pass
        segments_s.append(time.perf_counter() - start)
    result = {
        "dataset": args.dataset,
        "n_interactions": stream.n_interactions,
        "n_segments": stream.n_segments,
        "cpus": os.cpu_count(),
        "read_s": round(min(read_s), 4),
        "build_s": round(min(build_s), 4),
        "read_and_build_s": round(min(r + b for r, b in zip(read_s, build_s, strict=True)), 4),
        "load_from_cache_s": round(min(cache_s), 4),
        "materialise_all_segments_s": round(min(segments_s), 4),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
