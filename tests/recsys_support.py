"""Helpers shared by the recsys test modules: random sizes, small models and hand-made segments."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from scall_env.recsys import Recommender, TrainConfig, make_model
from scall_env.segment import Segment

SMALL = TrainConfig(batch_size=64, chunk_batches=5, lr=0.05, max_chunks=6)


def random_sizes(n: int, d_max: int, seed: int = 0) -> np.ndarray:
    """Random sizes in [1, d_max] that include d_max (so the width is d_max)."""
    sizes = np.random.default_rng(seed).integers(1, d_max + 1, size=n)
    sizes[0] = d_max
    return sizes.astype(np.int64)


def model_for(name: str, seg: Segment, d_max: int = 24, seed: int = 0, **kwargs) -> Recommender:
    """A model with random sizes up to ``d_max``."""
    return make_model(
        name,
        seg,
        random_sizes(seg.n_users, d_max, seed),
        random_sizes(seg.n_items, d_max, seed + 1),
        d_max=d_max,
        seed=seed,
        device="cpu",
        **kwargs,
    )


def rows_of(matrix: sp.csr_matrix, row: int) -> set[int]:
    """Column ids of one CSR row."""
    return set(matrix.indices[matrix.indptr[row] : matrix.indptr[row + 1]].tolist())


def hand_segment(
    train: list[list[int]],
    current: list[list[int]],
    test: list[list[int]],
    n_items: int,
) -> Segment:
    """A segment from explicit per-user item lists."""
    n_users = len(train)

    def csr(rows: list[list[int]]) -> sp.csr_matrix:
        dense = np.zeros((n_users, n_items), dtype=np.float32)
        for u, items in enumerate(rows):
            dense[u, items] = 1.0
        return sp.csr_matrix(dense)

    cur, tst = csr(current), csr(test)
    return Segment(
        index=1,
        n_users=n_users,
        n_items=n_items,
        train_graph=csr(train),
        current=cur,
        test=tst,
        test_users=np.flatnonzero(np.diff(tst.indptr)).astype(np.int64),
        candidate_items=np.unique(tst.indices).astype(np.int64),
        active_users=np.flatnonzero(np.diff(cur.indptr)).astype(np.int64),
        active_items=np.unique(cur.indices).astype(np.int64),
        user_freq=np.diff(cur.indptr).astype(np.int64),
        item_freq=np.bincount(cur.indices, minlength=n_items).astype(np.int64),
        n_train=int(cur.nnz),
        n_replay=0,
    )
