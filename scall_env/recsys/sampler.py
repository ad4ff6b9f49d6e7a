"""Vectorised BPR triple sampling (user, positive item, negative item) for one segment.

Per batch (no Python loop over samples):

* users: ``batch_size`` draws from the segment's active users, with replacement when there are
  fewer active users than ``batch_size`` (always the case on MovieLens-1M), otherwise without;
* positive: uniform among the user's items in ``segment.current``, read from the CSR row with a
  vectorised random offset ``indptr[u] + floor(U * row_length)``;
* negative: uniform among ``segment.active_items`` the user has not seen in training (their
  row of ``segment.train_graph``; the test part is never consulted), by
  vectorised rejection sampling: draw for every pending sample, look the ``(user, item)`` keys up
  in the sorted seen keys with ``searchsorted``, redraw only the rejected ones. After
  ``max_rejection_rounds`` rounds the few samples still pending (users who have seen almost all
  active items) are drawn exactly by inverting the sorted seen positions, so a batch always
  finishes in bounded time and the distribution stays exactly uniform.

Active users with no positive or with every active item already seen cannot form a triple; they
are excluded from the user pool (listed in :attr:`BPRSampler.excluded_users`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scall_env.recsys.device import resolve_device
from scall_env.recsys.sparse import canonical_csr
from scall_env.segment import Segment


@dataclass(frozen=True)
class BPRBatch:
    """One batch of BPR triples (``int64`` tensors of equal length, on the sampler's device).

    Attributes:
        users: User ids.
        pos_items: Positive item ids (from the user's row of ``segment.current``).
        neg_items: Negative item ids (active items outside the user's ``train_graph`` row).
    """

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor


class BPRSampler:
    """Seeded, vectorised BPR sampler over one segment.

    Attributes:
        batch_size: Triples per batch.
        max_rejection_rounds: Rejection rounds before the exact fallback.
        users: Sorted user pool (active users that can form a triple).
        excluded_users: Sorted active users left out (no positive, or no unseen active item).
        active_items: Sorted negative pool.
        device: Device of the sampled tensors.
    """

    def __init__(
        self,
        segment: Segment,
        batch_size: int = 10_000,
        *,
        seed: int = 0,
        device: str | torch.device = "auto",
        max_rejection_rounds: int = 16,
    ) -> None:
        """Precomputes the CSR arrays and lookup keys of ``segment``.

        Args:
            segment: The segment to sample from.
            batch_size: Triples per batch (>= 1; the paper uses 10,000).
            seed: Seed of the sampler's numpy generator.
            device: Device of the sampled tensors; ``"auto"`` picks CUDA when available.
            max_rejection_rounds: Rejection rounds before the exact fallback (>= 0; 0 samples
                every negative exactly).

        Raises:
            ValueError: If ``batch_size < 1``, ``max_rejection_rounds < 0``, the segment has no
                active items, or no active user can form a triple.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if max_rejection_rounds < 0:
            raise ValueError(f"max_rejection_rounds must be >= 0, got {max_rejection_rounds}")
        self.batch_size = int(batch_size)
        self.max_rejection_rounds = int(max_rejection_rounds)
        self.device = resolve_device(device)
        self._rng = np.random.default_rng(seed)

        current = canonical_csr(segment.current)
        self._pos_indptr = current.indptr.astype(np.int64)
        self._pos_indices = current.indices.astype(np.int64)

        self.active_items = np.asarray(segment.active_items, dtype=np.int64)
        n_active = self.active_items.shape[0]
        if n_active == 0:
            raise ValueError("segment has no active items to draw negatives from")
        self._n_active = n_active
        # Seen items restricted to the negative pool, as positions 0..n_active-1 in active_items.
        seen_active = canonical_csr(canonical_csr(segment.train_graph)[:, self.active_items])
        seen_rows = np.repeat(
            np.arange(seen_active.shape[0], dtype=np.int64), np.diff(seen_active.indptr)
        )
        seen_pos = seen_active.indices.astype(np.int64)
        self._seen_indptr = seen_active.indptr.astype(np.int64)
        # Rejection lookup: keys user * n_active + position, sorted as built (canonical CSR: rows in
        # order, sorted within), so one searchsorted tests a whole batch of draws, no row loop.
        # A sentinel larger than any query keeps every searchsorted result a valid index.
        self._seen_keys = np.append(seen_rows * n_active + seen_pos, np.iinfo(np.int64).max)
        # Exact fallback: within a row, (s_j - j) is non-decreasing for sorted seen positions s_j,
        # and the r-th unseen position is r + #{j : s_j - j <= r}. Offsetting by row keeps each
        # row's keys apart, so one global searchsorted minus the row start counts within the row.
        rank_in_row = np.arange(seen_pos.shape[0], dtype=np.int64) - self._seen_indptr[seen_rows]
        self._gap_keys = seen_rows * (n_active + 1) + (seen_pos - rank_in_row)
        self._n_free = n_active - np.diff(self._seen_indptr)

        active_users = np.asarray(segment.active_users, dtype=np.int64)
        has_pos = np.diff(self._pos_indptr)[active_users] > 0
        has_neg = self._n_free[active_users] > 0
        ok = has_pos & has_neg
        self.users = active_users[ok]
        self.excluded_users = active_users[~ok]
        if self.users.shape[0] == 0:
            raise ValueError(
                "no active user has both a positive in segment.current and an unseen active item"
            )

    def sample(self) -> BPRBatch:
        """Draws one batch of ``batch_size`` triples.

        Returns:
            The batch, as ``int64`` tensors on :attr:`device`.
        """
        rng = self._rng
        n_pool, size = self.users.shape[0], self.batch_size
        if n_pool < size:
            users = self.users[rng.integers(n_pool, size=size)]
        else:
            users = self.users[rng.choice(n_pool, size=size, replace=False)]
        start = self._pos_indptr[users]
        length = self._pos_indptr[users + 1] - start
        offsets = (rng.random(size) * length).astype(np.int64)
        pos_items = self._pos_indices[start + offsets]
        neg_items = self.active_items[self._negative_positions(users)]
        return BPRBatch(
            *(torch.from_numpy(a).to(self.device) for a in (users, pos_items, neg_items))
        )

    def _negative_positions(self, users: np.ndarray) -> np.ndarray:
        """Draws, per user, a uniform position in ``active_items`` outside the user's seen row."""
        # Typical users have seen few active items, so most draws pass in round one; the cap bounds
        # the cost for users who have seen nearly all. Both paths are uniform over unseen items.
        out = np.empty(users.shape[0], dtype=np.int64)
        todo = np.arange(users.shape[0])
        for _ in range(self.max_rejection_rounds):
            out[todo] = self._rng.integers(self._n_active, size=todo.shape[0])
            todo = todo[self._is_seen(users[todo], out[todo])]
            if todo.shape[0] == 0:
                return out
        out[todo] = self._exact_positions(users[todo])
        return out

    def _is_seen(self, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Vectorised membership test of ``(user, position)`` in the seen keys."""
        keys = users * self._n_active + positions
        return self._seen_keys[np.searchsorted(self._seen_keys, keys)] == keys

    def _exact_positions(self, users: np.ndarray) -> np.ndarray:
        """Draws unseen positions exactly, by rank among each user's unseen positions."""
        ranks = (self._rng.random(users.shape[0]) * self._n_free[users]).astype(np.int64)
        queries = users * (self._n_active + 1) + ranks
        below = np.searchsorted(self._gap_keys, queries, side="right") - self._seen_indptr[users]
        return ranks + below
