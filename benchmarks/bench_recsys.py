"""Benchmark of the base recommender on a synthetic segment shaped like MovieLens-1M segment 5.

The synthetic segment has 3,890 users, 3,253 items, ~550k training-graph edges drawn from
power-law user activity and item popularity, ~1,500 active users with ~96k current interactions
and ~24k test interactions. Sizes follow a power law over the frequency ranking with mean 32 and
``d_max = 256`` (the largest entities get 256, so LightGCN runs at full width: the worst case of a
search trial); ``uniform32`` timings use size 32 for everyone.

Prints one JSON object (seconds; ``peak_rss_mb`` is the process's peak resident memory)::

    python benchmarks/bench_recsys.py [--trial-batches 200] [--timed-batches 20] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp
import torch
from _common import int_at_least

from scall_env.recsys import (
    BPRSampler,
    Evaluator,
    TrainConfig,
    Trainer,
    make_model,
    normalized_adjacency,
    train_batches,
)
from scall_env.segment import Segment

N_USERS, N_ITEMS, N_EDGES = 3890, 3253, 550_000
N_ACTIVE, N_CURRENT, N_TEST = 1500, 96_000, 24_000
D_MAX, MEAN_SIZE = 256, 32


def _unique_edges(
    rng: np.random.Generator, user_p: np.ndarray, item_p: np.ndarray, n: int, exclude: np.ndarray
) -> np.ndarray:
    """Draws ``n`` distinct ``user * N_ITEMS + item`` keys not in ``exclude`` (sorted keys)."""
    keys = np.empty(0, dtype=np.int64)
    while keys.shape[0] < n:
        draw = rng.choice(user_p.shape[0], size=n, p=user_p) * N_ITEMS + rng.choice(
            N_ITEMS, size=n, p=item_p
        )
        keys = np.union1d(keys, np.setdiff1d(draw, exclude))
    return np.sort(rng.choice(keys, size=n, replace=False))


def _csr(keys: np.ndarray) -> sp.csr_matrix:
    """Binary float32 CSR matrix from sorted ``user * N_ITEMS + item`` keys."""
    data = np.ones(keys.shape[0], dtype=np.float32)
    out = sp.csr_matrix((data, (keys // N_ITEMS, keys % N_ITEMS)), shape=(N_USERS, N_ITEMS))
    out.sort_indices()
    return out


def synthetic_segment(seed: int = 0) -> Segment:
    """Builds the synthetic segment.

    Args:
        seed: Seed of the random graph.

    Returns:
        The segment.
    """
    rng = np.random.default_rng(seed)
    user_p = rng.permutation(1.0 / np.arange(1, N_USERS + 1) ** 0.6)
    user_p /= user_p.sum()
    item_p = rng.permutation(1.0 / np.arange(1, N_ITEMS + 1) ** 0.9)
    item_p /= item_p.sum()
    train_keys = _unique_edges(rng, user_p, item_p, N_EDGES, np.empty(0, dtype=np.int64))
    active = np.sort(rng.choice(N_USERS, size=N_ACTIVE, replace=False))
    in_active = np.isin(train_keys // N_ITEMS, active)
    current_keys = np.sort(rng.choice(train_keys[in_active], size=N_CURRENT, replace=False))
    active_p = np.zeros(N_USERS)
    active_p[active] = user_p[active] / user_p[active].sum()
    test_keys = _unique_edges(rng, active_p, item_p, N_TEST, train_keys)
    train, current, test = _csr(train_keys), _csr(current_keys), _csr(test_keys)
    test_items = np.unique(test_keys % N_ITEMS)
    return Segment(
        index=5,
        n_users=N_USERS,
        n_items=N_ITEMS,
        train_graph=train,
        current=current,
        test=test,
        test_users=np.unique(test_keys // N_ITEMS),
        candidate_items=test_items,
        active_users=np.unique(current_keys // N_ITEMS),
        active_items=np.unique(current_keys % N_ITEMS),
        user_freq=np.asarray(current.sum(axis=1)).ravel().astype(np.int64),
        item_freq=np.asarray(current.sum(axis=0)).ravel().astype(np.int64),
        n_train=N_CURRENT,
        n_replay=0,
    )


def power_law_sizes(freq: np.ndarray, mean: int = MEAN_SIZE, exponent: float = 0.8) -> np.ndarray:
    """Sizes decreasing as ``rank^-exponent`` down the frequency ranking, mean about ``mean``.

    Args:
        freq: Per-entity frequency (the most frequent gets the largest size).
        mean: Target mean size.
        exponent: Power-law exponent over the ranks.

    Returns:
        ``int64`` sizes in ``[1, D_MAX]``.
    """
    shares = 1.0 / np.arange(1, freq.shape[0] + 1) ** exponent
    scale = mean * freq.shape[0] / shares.sum()
    for _ in range(50):  # re-normalise after clipping
        clipped = np.clip(shares * scale, 1, D_MAX)
        scale *= mean * freq.shape[0] / clipped.sum()
    sizes = np.empty(freq.shape[0], dtype=np.int64)
    sizes[np.argsort(-freq, kind="stable")] = np.floor(np.clip(shares * scale, 1, D_MAX))
    return sizes


def _timed(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``None``: ``sys.argv[1:]``)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, low, default, text in (
        ("--trial-batches", 1, 200, "batches per trial"),
        ("--timed-batches", 1, 20, "batches for per-batch time"),
        ("--threads", 0, 0, "torch threads (0: default)"),
        ("--seed", 0, 0, "seed of the synthetic segment"),
    ):
        parser.add_argument(
            flag, type=int_at_least(low), default=default, help=f"{text} (default: {default})"
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the JSON report."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    start = time.perf_counter()
    seg = synthetic_segment(args.seed)
    build_s = time.perf_counter() - start
    user_sizes, item_sizes = power_law_sizes(seg.user_freq), power_law_sizes(seg.item_freq)
    uniform_users = np.full(seg.n_users, MEAN_SIZE, dtype=np.int64)
    uniform_items = np.full(seg.n_items, MEAN_SIZE, dtype=np.int64)
    config = TrainConfig()
    adjacency_s = _timed(lambda: normalized_adjacency(seg.train_graph))
    evaluator = Evaluator(seg)

    def batch_time(name: str, users: np.ndarray, items: np.ndarray) -> float:
        model = make_model(name, seg, users, items, device="cpu")
        trainer = Trainer(model, seg, config)
        trainer.run(3)  # warm-up
        return _timed(lambda: trainer.run(args.timed_batches)) / args.timed_batches

    def trial(name: str) -> float:
        def run() -> None:
            model = make_model(name, seg, user_sizes, item_sizes, device="cpu")
            train_batches(model, seg, args.trial_batches, config)
            Evaluator(seg).evaluate(model)

        return _timed(run)

    sampler = BPRSampler(seg, config.batch_size)
    sample_s = _timed(lambda: [sampler.sample() for _ in range(20)]) / 20
    lightgcn = make_model("lightgcn", seg, user_sizes, item_sizes)
    evaluator.evaluate(lightgcn)  # warm-up
    report = {
        "lightgcn_batch_s": batch_time("lightgcn", user_sizes, item_sizes),
        "mf_batch_s": batch_time("mf", user_sizes, item_sizes),
        "eval_s": min(_timed(lambda: evaluator.evaluate(lightgcn)) for _ in range(3)),
        "lightgcn_trial_s": trial("lightgcn"),
        "mf_trial_s": trial("mf"),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "lightgcn_batch_uniform32_s": batch_time("lightgcn", uniform_users, uniform_items),
        "sample_batch_s": sample_s,
        "adjacency_build_s": adjacency_s,
        "segment_build_s": build_s,
        "trial_batches": args.trial_batches,
        "width": int(max(user_sizes.max(), item_sizes.max())),
        "mean_size": float((user_sizes.sum() + item_sizes.sum()) / (seg.n_users + seg.n_items)),
        "train_edges": int(seg.train_graph.nnz),
        "active_users": int(seg.active_users.shape[0]),
        "test_users": int(seg.test_users.shape[0]),
        "candidates": int(seg.candidate_items.shape[0]),
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in report.items()}))


if __name__ == "__main__":
    main()
