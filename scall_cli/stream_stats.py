"""Inspect a stream: per-segment entity and interaction counts after filtering and splitting.

Example (``scall-stream-stats`` is the installed console script; ``python scripts/stream_stats.py``
takes the same arguments):
    scall-stream-stats --dataset ml-1m --n-segments 10 --k-core 10 --json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scall_cli._args import (
    USER_ERRORS,
    check_output_dir,
    fail,
    key_value,
    new_parser,
    non_negative_int,
)
from scall_env.data import DATASETS
from scall_env.stream import SEGMENTATIONS, StreamConfig, load_stream

COLUMNS = ("segment", "n_interactions", "n_users", "n_items", "n_train", "n_test", "n_test_users")


STREAM_OPTIONS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    ("--k-core", int, "minimum interactions per user and item"),
    ("--n-segments", int, "segments for --segmentation count"),
    ("--new-entity-threshold", int, "new users+items per segment for --segmentation new_entities"),
    ("--replay-ratio", float, "replay sample size as a share of the segment"),
    ("--train-fraction", float, "training share of [replay; segment]"),
    ("--seed", non_negative_int, "replay sampling seed"),
)
"""StreamConfig settings taken as options: (flag, parser, help); defaults are StreamConfig's."""


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-stream-stats`` parser; its description is this module's docstring."""
    defaults = StreamConfig()
    parser = new_parser(__doc__, argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--dataset", default="ml-1m", choices=DATASETS, help="dataset name (default: ml-1m)"
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        help="folder with the dataset files or zip (default: $SCALL_DATA_DIR, then the cache dir)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where processed streams are cached; default: $SCALL_CACHE_DIR or ~/.cache/scall",
    )
    parser.add_argument(
        "--no-cache", action="store_true", help="rebuild the stream and write no cache file"
    )
    parser.add_argument(
        "--option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="dataset option, repeatable (e.g. path=reviews.json, sep=';', n_users=500)",
    )
    parser.add_argument(
        "--segmentation",
        choices=SEGMENTATIONS,
        default=defaults.segmentation,
        help="count: equal-count segments; new_entities: a new segment after N new\n"
        "users+items; time: fixed time windows (default: count)",
    )
    parser.add_argument(
        "--time-window", type=float, default=None, help="window seconds for --segmentation time"
    )
    for flag, kind, text in STREAM_OPTIONS:
        default = getattr(defaults, flag.removeprefix("--").replace("-", "_"))
        parser.add_argument(flag, type=kind, default=default, help=f"{text} (default: {default})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Print a stream's statistics for ``argv`` (default ``sys.argv[1:]``); returns the status."""
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        if args.cache_dir is not None and not args.no_cache:
            check_output_dir(args.cache_dir, "--cache-dir")
        config = StreamConfig(
            k_core=args.k_core,
            segmentation=args.segmentation,
            n_segments=args.n_segments,
            new_entity_threshold=args.new_entity_threshold,
            time_window=args.time_window,
            replay_ratio=args.replay_ratio,
            train_fraction=args.train_fraction,
            seed=args.seed,
        )
        stream = load_stream(
            args.dataset,
            config=config,
            data_dir=args.data_dir,
            cache_dir=args.cache_dir,
            use_cache=not args.no_cache,
            **dict(args.option),
        )
    except USER_ERRORS as exc:
        fail(parser, exc)
    stats = stream.stats()
    if args.json:
        json.dump(stats, sys.stdout, indent=2)
        print()
        return 0
    print(
        f"{stats['dataset']}: {stats['n_interactions']} interactions, {stats['n_users']} users, "
        f"{stats['n_items']} items after the {config.k_core}-core filter, "
        f"{stats['n_segments']} segments"
    )
    print(" ".join(f"{c:>14}" for c in COLUMNS))
    for row in stats["segments"]:
        print(" ".join(f"{row[c]:>14}" for c in COLUMNS))
    return 0


if __name__ == "__main__":  # python -m scall_cli.stream_stats
    sys.exit(main())
