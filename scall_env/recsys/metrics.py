"""Top-K evaluation: Recall@K, NDCG@K and the search's fitness, batched over test users.

For each test user every candidate item (``segment.candidate_items``) is scored by dot product of
final embeddings, the user's training items (``segment.train_graph`` row) are set to ``-inf``, and
``torch.topk`` ranks the rest. Recall@K = hits in the top K / the user's test items;
NDCG@K uses binary gains and an ideal DCG over ``min(K, test items)`` positions.
Fitness = mean over test users of ``(Recall@20 + NDCG@20) / 2``. Users are processed in batches
over dense ``batch x candidates`` score matrices; there is no per-user Python loop.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch

from scall_env.recsys.device import resolve_device
from scall_env.recsys.models import Recommender
from scall_env.recsys.sparse import canonical_csr
from scall_env.segment import Segment

DEFAULT_KS: tuple[int, ...] = (5, 10, 20)
"""Cut-offs reported by default."""

FITNESS_K = 20
"""Cut-off of the fitness (always evaluated)."""


def _flat_entries(matrix: sp.csr_matrix, device: torch.device) -> tuple[np.ndarray, torch.Tensor]:
    """Returns (row pointer, ``row * n_cols + col`` of every stored entry) of a CSR matrix."""
    rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
    flat = rows * matrix.shape[1] + matrix.indices.astype(np.int64)
    return matrix.indptr.astype(np.int64), torch.from_numpy(flat).to(device)


class Evaluator:
    """Precomputed evaluation data of one segment, reusable for every model trained on it.

    Attributes:
        ks: Sorted cut-offs evaluated (the requested ones plus :data:`FITNESS_K`).
        batch_size: Test users scored per batch.
        device: Device of the precomputed tensors (embeddings are moved there).
        n_test_users: Number of test users.
        n_candidates: Number of candidate items.
    """

    def __init__(
        self,
        segment: Segment,
        ks: Sequence[int] = DEFAULT_KS,
        *,
        batch_size: int = 1024,
        device: str | torch.device = "auto",
    ) -> None:
        """Precomputes the test users' exclusions and test positives over the candidates.

        Args:
            segment: The segment to evaluate on.
            ks: Cut-offs to report (positive integers); :data:`FITNESS_K` is always added.
            batch_size: Test users scored per batch (>= 1); memory grows as
                ``batch_size x n_candidates``.
            device: Device to evaluate on; ``"auto"`` picks CUDA when available.

        Raises:
            ValueError: If ``ks`` is empty or holds a value < 1, ``batch_size < 1``, or the
                segment has no test users or no candidate items.
        """
        ks = tuple(int(k) for k in ks)
        if not ks or min(ks) < 1:
            raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.ks = tuple(sorted(set(ks) | {FITNESS_K}))
        self.batch_size = int(batch_size)
        self.device = resolve_device(device)

        users = np.asarray(segment.test_users, dtype=np.int64)
        items = np.asarray(segment.candidate_items, dtype=np.int64)
        if users.shape[0] == 0:
            raise ValueError("segment has no test users")
        if items.shape[0] == 0:
            raise ValueError("segment has no candidate items")
        self.n_test_users = int(users.shape[0])
        self.n_candidates = int(items.shape[0])
        self._users = torch.from_numpy(users).to(self.device)
        self._items = torch.from_numpy(items).to(self.device)

        test_rows = canonical_csr(segment.test)[users]
        # n_pos counts every test item, also those outside the candidates (never hits).
        n_pos = np.diff(test_rows.indptr)
        self._n_pos = torch.from_numpy(n_pos).to(self.device, torch.float64)
        # Training items are masked to -inf so known positives take no top-K slot. Both masks are
        # flat ids (test-user index * n_candidates + candidate position) in row order: a user
        # batch [lo, hi) is the slice ptr[lo]:ptr[hi], minus lo * n_candidates.
        self._excl_ptr, self._excl_flat = _flat_entries(
            canonical_csr(canonical_csr(segment.train_graph)[users][:, items]), self.device
        )
        self._label_ptr, self._label_flat = _flat_entries(
            canonical_csr(test_rows[:, items]), self.device
        )

        k_max = self.ks[-1]
        discount = 1.0 / np.log2(np.arange(k_max, dtype=np.float64) + 2.0)
        self._discount = torch.from_numpy(discount).to(self.device)
        ideal = np.cumsum(discount)
        # Ideal DCG of each user at each K: all hits first, so the discount summed over
        # min(K, n_pos) positions (test users have n_pos >= 1; the clip only guards the index).
        idcg = np.stack([ideal[np.clip(np.minimum(k, n_pos), 1, None) - 1] for k in self.ks])
        self._idcg = torch.from_numpy(idcg).to(self.device)

    @torch.no_grad()
    def evaluate(self, model: Recommender) -> dict[str, float]:
        """Evaluates a model.

        Args:
            model: Any :class:`~scall_env.recsys.models.Recommender` for this segment's entities.

        Returns:
            ``{"recall@K": ..., "ndcg@K": ... for K in ks, "fitness": ...}``.
        """
        user_emb, item_emb = model()
        return self.evaluate_embeddings(user_emb, item_emb)

    @torch.no_grad()
    def evaluate_embeddings(
        self, user_emb: torch.Tensor, item_emb: torch.Tensor
    ) -> dict[str, float]:
        """Evaluates given final embeddings (scores are dot products).

        Args:
            user_emb: ``n_users x d`` final user embeddings (global ids as rows).
            item_emb: ``n_items x d`` final item embeddings (global ids as rows).

        Returns:
            ``{"recall@K": ..., "ndcg@K": ... for K in ks, "fitness": ...}``.
        """
        cand = item_emb.to(self.device).index_select(0, self._items).T.contiguous()
        user_emb = user_emb.to(self.device)
        n_cand = self.n_candidates
        # One topk at the largest K serves every K (topk is sorted: its first k columns are the
        # top k), on a dense batch x candidates score matrix per user batch.
        k_top = min(self.ks[-1], n_cand)
        recall_sum = torch.zeros(len(self.ks), dtype=torch.float64, device=self.device)
        ndcg_sum = torch.zeros_like(recall_sum)
        for lo in range(0, self.n_test_users, self.batch_size):
            hi = min(lo + self.batch_size, self.n_test_users)
            scores = user_emb.index_select(0, self._users[lo:hi]) @ cand
            flat = scores.view(-1)
            excl = self._excl_flat[int(self._excl_ptr[lo]) : int(self._excl_ptr[hi])] - lo * n_cand
            flat[excl] = float("-inf")
            top_scores, top_idx = scores.topk(k_top, dim=1)
            labels = torch.zeros(scores.shape, dtype=torch.bool, device=self.device)
            pos = (
                self._label_flat[int(self._label_ptr[lo]) : int(self._label_ptr[hi])] - lo * n_cand
            )
            labels.view(-1)[pos] = True
            # An excluded (-inf) slot is never a hit, even if that item is also a test item.
            hits = (labels.gather(1, top_idx) & torch.isfinite(top_scores)).to(torch.float64)
            gains = hits * self._discount[:k_top]
            n_pos = self._n_pos[lo:hi].clamp(min=1.0)
            for j, k in enumerate(self.ks):
                recall_sum[j] += (hits[:, :k].sum(1) / n_pos).sum()
                ndcg_sum[j] += (gains[:, :k].sum(1) / self._idcg[j, lo:hi]).sum()
        recall = (recall_sum / self.n_test_users).tolist()
        ndcg = (ndcg_sum / self.n_test_users).tolist()
        out: dict[str, float] = {}
        for j, k in enumerate(self.ks):
            out[f"recall@{k}"] = recall[j]
            out[f"ndcg@{k}"] = ndcg[j]
        out["fitness"] = (out[f"recall@{FITNESS_K}"] + out[f"ndcg@{FITNESS_K}"]) / 2.0
        return out


def evaluate(
    model: Recommender,
    segment: Segment,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Evaluates a model on a segment (builds a one-off :class:`Evaluator` on the model's device).

    Args:
        model: The model to evaluate.
        segment: The segment to evaluate on.
        ks: Cut-offs to report; :data:`FITNESS_K` is always added.
        batch_size: Test users scored per batch.

    Returns:
        ``{"recall@K": ..., "ndcg@K": ... for K in ks, "fitness": ...}``.
    """
    return Evaluator(segment, ks, batch_size=batch_size, device=model.device).evaluate(model)
