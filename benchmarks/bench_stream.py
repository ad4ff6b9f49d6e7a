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

from scall_env.data import DATASETS, load_interactions
from scall_env.stream import StreamConfig, build_stream, load_stream


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--dataset", default="ml-1m", choices=DATASETS, help="dataset (default: ml-1m)"
    )
    parser.add_argument(
        "--data-dir", default=None, help="dataset folder (default: $SCALL_DATA_DIR)"
    )
    parser.add_argument(
        "--n-segments", type=int, default=10, help="equal-count segments (default: 10)"
    )
    parser.add_argument("--k-core", type=int, default=10, help="k-core filter (default: 10)")
    parser.add_argument(
        "--repeat", type=int, default=3, help="repetitions; the best is reported (default: 3)"
    )
    args = parser.parse_args()
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
