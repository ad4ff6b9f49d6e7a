"""Vectorised BPR triple sampling (user, positive item, negative item) for one segment.

Per batch (no Python loop over samples):

* users: ``batch_size`` draws from the segment's active users, with replacement when there are
  fewer active users than ``batch_size`` (always the case on MovieLens-1M), otherwise without;
* positive: uniform among the user's items in ``segment.current``, read from the CSR row with a
  vectorised random offset ``indptr[u] + floor(U * row_length)``;
* negative: uniform among ``segment.active_items`` the user has not seen in training (their
  row of ``segment.train_graph``; the test part is never consulted), by
  vectorised rejection sampling: draw for every pending sample, test the ``(user, item)`` pairs
  against a bitmap of the seen pairs (sorted keys and ``searchsorted`` when the bitmap would be
  too large), redraw only the rejected ones. After ``max_rejection_rounds`` rounds the few
  samples still pending (users who have seen almost all active items) are drawn exactly by
  inverting the sorted seen positions, so a batch always finishes in bounded time and the
  distribution stays exactly uniform.

Active users with no positive or with every active item already seen cannot form a triple; they
are excluded from the user pool (listed in :attr:`BPRSampler.excluded_users`).

A batch also carries what its loss needs besides the ids, worked out here in numpy: per-entity
occurrence counts and the :class:`PairPattern` of its distinct (user, item) pairs over the
*active rows* (active users, then active items, as
:meth:`~scall_env.recsys.models.Recommender.training_embeddings` orders them). What depends only
on the segment is built once per segment and shared by every sampler of it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from scall_env.recsys.device import resolve_device
from scall_env.recsys.sparse import canonical_csr, segment_cached
from scall_env.segment import Segment

MAX_BITMAP_BITS = 2**30
"""Largest seen-pair bitmap (pool users x active items, 128 MiB); beyond it sorted keys."""


@dataclass(frozen=True)
class PairPattern:
    """The distinct (user, item) pairs of a batch over the ``n_rows`` active rows.

    Attributes:
        n_rows: Active users plus active items.
        batch: Triples in the batch.
        crow: CSR row pointer of the pairs (rows: active users; columns: active items' rows).
        cols: Column of each pair, sorted within rows.
        pair_of: Pair of each triple's positive (first ``batch``) and negative (last ``batch``).
        sym_crow: Row pointer of the symmetric pattern: the pairs and their transposes.
        sym_cols: Its columns (sorted within rows).
        order: Pair of each transposed entry (the pairs in item-major order).
    """

    n_rows: int
    batch: int
    crow: torch.Tensor
    cols: torch.Tensor
    pair_of: torch.Tensor
    sym_crow: torch.Tensor
    sym_cols: torch.Tensor
    order: torch.Tensor


@dataclass(frozen=True)
class BPRBatch:
    """One batch of BPR triples (tensors on the sampler's device).

    Attributes:
        users: ``int64`` user ids.
        pos_items: ``int64`` positive item ids (from the user's row of ``segment.current``).
        neg_items: ``int64`` negative item ids (active items outside the user's training row).
        user_count: ``float32`` occurrences of each user (length ``n_users``).
        item_count: ``float32`` occurrences of each item as positive or negative (``n_items``).
        pairs: The distinct pairs, over the active rows.
    """

    users: torch.Tensor
    pos_items: torch.Tensor
    neg_items: torch.Tensor
    user_count: torch.Tensor
    item_count: torch.Tensor
    pairs: PairPattern

    @property
    def size(self) -> int:
        """Triples in the batch."""
        return int(self.users.shape[0])


def _crow(rows: np.ndarray, n_rows: int) -> np.ndarray:
    """CSR row pointer of sorted row ids."""
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n_rows))])


def pair_pattern(
    users: np.ndarray,
    pos: np.ndarray,
    neg: np.ndarray,
    n_active_users: int,
    n_active_items: int,
    device: torch.device,
) -> PairPattern:
    """The :class:`PairPattern` of triples given as active positions.

    Args:
        users: Position of each triple's user among the active users.
        pos: Position of its positive among the active items.
        neg: Position of its negative among the active items.
        n_active_users: Active users.
        n_active_items: Active items.
        device: Device of the tensors.

    Returns:
        The pattern.
    """
    # Keys user * n_items + item, sorted and deduplicated: row-major, so the distinct pairs are a
    # CSR pattern as they stand, and a pair used by several triples is scored once. (32-bit keys
    # and a radix sort by item where they fit: the same results, sorted faster.)
    n_rows = n_active_users + n_active_items
    key_type = np.int32 if n_active_users * n_active_items < 2**31 else np.int64
    users, pos, neg = (a.astype(key_type) for a in (users, pos, neg))
    keys = np.concatenate([users * n_active_items + pos, users * n_active_items + neg])
    pairs, pair_of = np.unique(keys, return_inverse=True)
    pairs = pairs.astype(np.int64)
    rows = pairs // n_active_items
    items = pairs - rows * n_active_items
    cols = items + n_active_users
    # the pairs in item-major order: a stable sort by item of the (user, item)-sorted pairs
    order = np.argsort(items.astype(np.uint16) if n_active_items <= 2**16 else items, kind="stable")
    arrays = (
        _crow(rows, n_rows),
        cols,
        pair_of.reshape(-1).astype(np.int64),
        _crow(np.concatenate([rows, cols[order]]), n_rows),
        np.concatenate([cols, rows[order]]),
        order,
    )
    return PairPattern(n_rows, users.shape[0], *(torch.from_numpy(a).to(device) for a in arrays))


@dataclass(frozen=True)
class _Tables:
    """What a sampler precomputes from its segment (shared, read-only)."""

    pos_indptr: np.ndarray
    pos_indices: np.ndarray
    pos_active: np.ndarray
    active_users: np.ndarray
    active_items: np.ndarray
    seen_indptr: np.ndarray
    gap_keys: np.ndarray
    n_free: np.ndarray
    users: np.ndarray
    excluded_users: np.ndarray
    user_active: np.ndarray
    seen_bits: np.ndarray | None
    seen_keys: np.ndarray | None


def _tables(segment: Segment, max_bitmap_bits: int) -> _Tables:
    """Builds the :class:`_Tables` of ``segment`` (see :class:`BPRSampler`)."""
    current = canonical_csr(segment.current)
    pos_indptr = current.indptr.astype(np.int64)
    pos_indices = current.indices.astype(np.int64)
    active_items = np.asarray(segment.active_items, dtype=np.int64)
    n_active = active_items.shape[0]
    if n_active == 0:
        raise ValueError("segment has no active items to draw negatives from")
    # Seen items restricted to the negative pool, as positions 0..n_active-1 in active_items.
    seen_active = canonical_csr(canonical_csr(segment.train_graph)[:, active_items])
    seen_indptr = seen_active.indptr.astype(np.int64)
    seen_rows = np.repeat(np.arange(seen_active.shape[0], dtype=np.int64), np.diff(seen_indptr))
    seen_pos = seen_active.indices.astype(np.int64)
    # Exact fallback: within a row, (s_j - j) is non-decreasing for sorted seen positions s_j,
    # and the r-th unseen position is r + #{j : s_j - j <= r}. Offsetting by row keeps each
    # row's keys apart, so one global searchsorted minus the row start counts within the row.
    rank_in_row = np.arange(seen_pos.shape[0], dtype=np.int64) - seen_indptr[seen_rows]
    gap_keys = seen_rows * (n_active + 1) + (seen_pos - rank_in_row)
    n_free = n_active - np.diff(seen_indptr)

    active_users = np.asarray(segment.active_users, dtype=np.int64)
    ok = (np.diff(pos_indptr)[active_users] > 0) & (n_free[active_users] > 0)
    users = active_users[ok]
    if users.shape[0] == 0:
        raise ValueError(
            "no active user has both a positive in segment.current and an unseen active item"
        )
    # Rejection test on pool index * n_active + position: a bitmap (one probe per draw) when it
    # fits, else the sorted keys (canonical CSR rows are sorted) and a binary search.
    pool = canonical_csr(seen_active[users])
    pool_rows = np.repeat(np.arange(users.shape[0], dtype=np.int64), np.diff(pool.indptr))
    keys = pool_rows * n_active + pool.indices.astype(np.int64)
    seen_bits = seen_keys = None
    if users.shape[0] * n_active <= max_bitmap_bits:
        seen_bits = np.zeros(-(-users.shape[0] * n_active // 8), dtype=np.uint8)
        np.bitwise_or.at(seen_bits, keys >> 3, (1 << (keys & 7)).astype(np.uint8))
    else:  # a sentinel larger than any query keeps every searchsorted result a valid index
        seen_keys = np.append(keys, np.iinfo(np.int64).max)
    item_active = np.full(segment.n_items, -1, dtype=np.int64)
    item_active[active_items] = np.arange(n_active)
    return _Tables(
        pos_indptr=pos_indptr,
        pos_indices=pos_indices,
        pos_active=item_active[pos_indices],
        active_users=active_users,
        active_items=active_items,
        seen_indptr=seen_indptr,
        gap_keys=gap_keys,
        n_free=n_free,
        users=users,
        excluded_users=active_users[~ok],
        user_active=np.flatnonzero(ok),
        seen_bits=seen_bits,
        seen_keys=seen_keys,
    )


class BPRSampler:
    """Seeded, vectorised BPR sampler over one segment.

    Attributes:
        batch_size: Triples per batch.
        max_rejection_rounds: Rejection rounds before the exact fallback.
        users: Sorted user pool (active users that can form a triple).
        excluded_users: Sorted active users left out (no positive, or no unseen active item).
        active_users: Sorted active users (the user rows of the batches' pair patterns).
        active_items: Sorted negative pool (the item rows of the pair patterns).
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
        max_bitmap_bits: int = MAX_BITMAP_BITS,
    ) -> None:
        """Precomputes (or reuses) the lookup tables of ``segment``.

        Args:
            segment: The segment to sample from.
            batch_size: Triples per batch (>= 1; the paper uses 10,000).
            seed: Seed of the sampler's numpy generator.
            device: Device of the sampled tensors; ``"auto"`` picks CUDA when available.
            max_rejection_rounds: Rejection rounds before the exact fallback (>= 0; 0 samples
                every negative exactly).
            max_bitmap_bits: Largest seen-pair bitmap; beyond it the rejection test searches
                sorted keys (the same draws, slower).

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
        self._n_users, self._n_items = int(segment.n_users), int(segment.n_items)
        key = ("bpr-sampler", int(max_bitmap_bits))
        t = self._t = segment_cached(segment, key, lambda: _tables(segment, max_bitmap_bits))
        self._n_active = int(t.active_items.shape[0])
        self.users, self.excluded_users = t.users, t.excluded_users
        self.active_users, self.active_items = t.active_users, t.active_items

    def sample(self) -> BPRBatch:
        """Draws one batch of ``batch_size`` triples.

        Returns:
            The batch, as tensors on :attr:`device`.
        """
        rng, t = self._rng, self._t
        n_pool, size = t.users.shape[0], self.batch_size
        if n_pool < size:
            picks = rng.integers(n_pool, size=size)
        else:
            picks = rng.choice(n_pool, size=size, replace=False)
        users = t.users[picks]
        start = t.pos_indptr[users]
        length = t.pos_indptr[users + 1] - start
        entries = start + (rng.random(size) * length).astype(np.int64)
        negatives = self._negative_positions(picks, users)
        pos_items, neg_items = t.pos_indices[entries], t.active_items[negatives]
        pairs = pair_pattern(
            t.user_active[picks],
            t.pos_active[entries],
            negatives,
            t.active_users.shape[0],
            self._n_active,
            self.device,
        )
        user_count = np.bincount(users, minlength=self._n_users)
        item_count = np.bincount(pos_items, minlength=self._n_items) + np.bincount(
            neg_items, minlength=self._n_items
        )
        ids = (users, pos_items, neg_items)
        counts = (user_count.astype(np.float32), item_count.astype(np.float32))
        return BPRBatch(
            *(torch.from_numpy(a).to(self.device) for a in (*ids, *counts)), pairs=pairs
        )

    def _negative_positions(self, picks: np.ndarray, users: np.ndarray) -> np.ndarray:
        """Draws, per user, a uniform position in ``active_items`` outside the user's seen row."""
        # Typical users have seen few active items, so most draws pass in round one; the cap bounds
        # the cost for users who have seen nearly all. Both paths are uniform over unseen items.
        out = np.empty(users.shape[0], dtype=np.int64)
        todo = np.arange(users.shape[0])
        for _ in range(self.max_rejection_rounds):
            out[todo] = self._rng.integers(self._n_active, size=todo.shape[0])
            todo = todo[self._is_seen(picks[todo], out[todo])]
            if todo.shape[0] == 0:
                return out
        out[todo] = self._exact_positions(users[todo])
        return out

    def _is_seen(self, picks: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Vectorised membership test of ``(pool user, position)`` among the seen pairs."""
        keys = picks * self._n_active + positions
        bits = self._t.seen_bits
        if bits is not None:
            return ((bits[keys >> 3] >> (keys & 7).astype(np.uint8)) & 1).astype(bool)
        seen = self._t.seen_keys
        return seen[np.searchsorted(seen, keys)] == keys

    def _exact_positions(self, users: np.ndarray) -> np.ndarray:
        """Draws unseen positions exactly, by rank among each user's unseen positions."""
        t = self._t
        ranks = (self._rng.random(users.shape[0]) * t.n_free[users]).astype(np.int64)
        queries = users * (self._n_active + 1) + ranks
        below = np.searchsorted(t.gap_keys, queries, side="right") - t.seen_indptr[users]
        return ranks + below
