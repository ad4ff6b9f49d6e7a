"""What one segment of the stream hands to training and evaluation: arrays and CSR matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False)
class Segment:
    """One segment ``D_t`` of the stream, ready for training and evaluation.

    Users and items carry global ids (renumbered by first appearance over the whole stream), and
    the entities of the training graph are exactly the id prefixes ``0..n_users-1`` and
    ``0..n_items-1``, so embedding tables can be indexed by global id. All matrices are
    ``n_users x n_items`` binary ``scipy.sparse.csr_matrix`` (``float32`` ones, sorted indices,
    no duplicates).

    Attributes:
        index: Segment number ``t`` (0-based).
        n_users: Users in the training graph.
        n_items: Items in the training graph.
        train_graph: Every interaction of ``D_0..D_{t-1}`` plus the training part of
            ``[replay; D_t]``: the LightGCN graph, what evaluation excludes from ranking, and
            what BPR negatives are never drawn from (test interactions may be negatives, as in
            the authors' code: the test part is unknown at training time).
        current: The training part of ``[replay; D_t]``: BPR positives come from here.
        test: Test positives (last 20% of ``[replay; D_t]``) on training users and items.
        test_users: Sorted ids of training users with at least one test interaction (as in the
            authors' code, also when none of its items occurs in training: that user scores 0).
        candidate_items: Sorted ids of test-set items that occur in training (whoever the test
            user): the ranking pool.
        active_users: Sorted ids of users in the training part of ``[replay; D_t]`` (BPR users).
        active_items: Sorted ids of items in the training part of ``[replay; D_t]`` (negative pool).
        user_freq: Per-user interaction count in the training part of ``[replay; D_t]``
            (``int64``, length ``n_users``; 0 for users seen only earlier).
        item_freq: The same for items (length ``n_items``).
        n_train: Interactions in the training part of ``[replay; D_t]`` (replay included).
        n_replay: Replayed interactions in front of ``D_t`` (0 for ``D_0``).
    """

    index: int
    n_users: int
    n_items: int
    train_graph: sp.csr_matrix
    current: sp.csr_matrix
    test: sp.csr_matrix
    test_users: np.ndarray
    candidate_items: np.ndarray
    active_users: np.ndarray
    active_items: np.ndarray
    user_freq: np.ndarray
    item_freq: np.ndarray
    n_train: int
    n_replay: int

    @property
    def n_test(self) -> int:
        """Test interactions after restriction to training users and items."""
        return int(self.test.nnz)
