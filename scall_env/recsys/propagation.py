"""LightGCN propagation: the normalised adjacency and an exact, structure-aware autograd Function.

LightGCN's final embeddings are ``F(x) = (x + A x + A^2 x + ... + A^L x) / (L + 1)`` for the
symmetric-normalised adjacency ``A`` (:func:`normalized_adjacency`), evaluated in Horner form
``x + A (x + A (x + A x))`` (``L`` sparse-dense products). Because ``A`` is symmetric, the
backward pass is the same kind of polynomial in the same matrix applied to the incoming gradient,
so :class:`LightGCNPropagation` never transposes a CSR matrix per batch.

Two exact savings exploit structure that is fixed for a model (:class:`PropagationPlan`):

* Column blocks. ``x`` is prefix-masked by the embedding sizes, so in a column block
  ``[lo, hi)`` only the rows with ``size > lo`` are non-zero. The first forward product reads
  only those rows (``A[:, S] x[S, lo:hi]``) and, symmetrically, the last backward product
  computes only those rows (``A[S, :] g[:, lo:hi]``; the other entries would be masked away).
  With power-law sizes most wide columns are almost empty.
* Active rows. BPR batches only touch the segment's active users and items, so in training
  (``active_only=True``) the output is their rows only: the last forward product computes only
  those (``A[act, :] z``) and, symmetrically, the first backward product reads only their
  gradient rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from scall_env.recsys.device import resolve_device
from scall_env.recsys.sparse import segment_cached, to_torch_csr
from scall_env.segment import Segment

BLOCK_EDGES: tuple[int, ...] = (16, 32, 64, 128, 256, 512, 1024)
"""Column-block boundaries of the first/last products (blocks with equal row sets merge)."""

DEFAULT_COLUMN_CHUNK = 64
"""Columns per sparse-dense product on CPU (2 cores, 7k nodes, 1.1M nnz: 32 or 64 columns cost
0.06 ms per column, 8 columns 0.1 ms, an odd 5 or 7 about 0.25 ms; wider products slow down as
the dense operand leaves the cache, and every chunk costs two copies)."""


def normalized_adjacency(train_graph: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Builds LightGCN's symmetric-normalised adjacency ``D^-1/2 A D^-1/2`` (scipy, float64).

    ``A = [[0, R], [R^T, 0]]`` is the bipartite graph over users (rows ``0..n_users-1``) followed by
    items (rows ``n_users..n_users+n_items-1``); ``D`` is its degree matrix. Nodes of degree 0 get
    an all-zero row and column.

    Args:
        train_graph: ``n_users x n_items`` interaction matrix ``R`` (binary).

    Returns:
        The ``(n_users + n_items)`` square symmetric CSR matrix with sorted indices.

    Raises:
        ValueError: If ``train_graph`` is not a 2-D scipy sparse matrix.
    """
    if not sp.issparse(train_graph) or train_graph.ndim != 2:
        raise ValueError("train_graph must be a 2-D scipy sparse matrix")
    r = sp.csr_matrix(train_graph, dtype=np.float64)
    r.sum_duplicates()
    user_deg = np.asarray(r.sum(axis=1)).ravel()
    item_deg = np.asarray(r.sum(axis=0)).ravel()
    with np.errstate(divide="ignore"):
        user_scale = np.where(user_deg > 0, 1.0 / np.sqrt(user_deg), 0.0)
        item_scale = np.where(item_deg > 0, 1.0 / np.sqrt(item_deg), 0.0)
    r_norm = sp.diags(user_scale) @ r @ sp.diags(item_scale)
    adjacency = sp.csr_matrix(sp.bmat([[None, r_norm], [r_norm.T, None]], format="csr"))
    adjacency.sort_indices()
    return adjacency


def _scipy_adjacency(segment: Segment) -> sp.csr_matrix:
    """Normalised adjacency of ``segment.train_graph`` (scipy), cached per segment."""
    return segment_cached(segment, "scipy", lambda: normalized_adjacency(segment.train_graph))


def segment_adjacency(
    segment: Segment,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Returns :func:`normalized_adjacency` of ``segment.train_graph`` as torch CSR, cached.

    A search builds many models on one segment; they share one matrix per device and dtype.
    The cache holds the segment weakly (entries vanish with it) and assumes the segment's matrices
    are not modified in place.

    Args:
        segment: The segment.
        device: Device of the matrix; ``"auto"`` picks CUDA when available.
        dtype: Dtype of the values.

    Returns:
        The ``(n_users + n_items)`` square sparse CSR adjacency (do not modify it).
    """
    dev = resolve_device(device)
    return segment_cached(
        segment,
        ("torch", dev, dtype),
        lambda: to_torch_csr(_scipy_adjacency(segment), dtype=dtype, device=dev),
    )


def _rows_and_cols(
    adjacency: sp.csr_matrix, rows: np.ndarray, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns torch CSR ``A[rows, :]`` and ``A[:, rows]`` (the transpose, ``A`` symmetric)."""
    sub = adjacency[rows]
    return (
        to_torch_csr(sub, dtype=dtype, device=device),
        to_torch_csr(sub.T, dtype=dtype, device=device),
    )


class PropagationPlan(nn.Module):
    """Sparse operators of LightGCN's propagation for one segment and one set of sizes.

    All tensors are buffers, so the plan moves and changes dtype with its model. The
    :class:`LightGCNPropagation` inputs must be prefix-masked by ``sizes``.

    Attributes:
        column_chunk: Columns per sparse-dense product (``None``: whole products).
        n_layers: Number of products ``L``.
        n_rows: ``n_users + n_items``.
        width: Columns of the propagated matrices.
        blocks: ``(lo, hi, has_rows)`` column blocks of the first/last products; blocks without
            rows use the full adjacency.
    """

    def __init__(
        self,
        segment: Segment,
        sizes: np.ndarray,
        width: int,
        n_layers: int,
        *,
        dtype: torch.dtype = torch.float32,
        device: str | torch.device = "cpu",
        column_chunk: int | None = DEFAULT_COLUMN_CHUNK,
    ) -> None:
        """Builds the plan.

        Args:
            segment: The segment (its ``train_graph`` and active users/items).
            sizes: Embedding sizes of users followed by items (length ``n_users + n_items``).
            width: Columns of the propagated matrices (``>= max(sizes)``).
            n_layers: Number of propagation layers (>= 0).
            dtype: Dtype of the operators.
            device: Device of the operators; ``"auto"`` picks CUDA when available.
            column_chunk: Columns per sparse-dense product on CPU (cache blocking: a narrow slice
                of the dense operand stays in cache); ``None`` for whole products. Ignored (whole
                products) on CUDA.

        Raises:
            ValueError: If ``n_layers < 0``, ``column_chunk < 1``, or ``sizes`` has the wrong
                length or values outside ``[1, width]``.
        """
        super().__init__()
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        n_rows = segment.n_users + segment.n_items
        sizes = np.asarray(sizes, dtype=np.int64)
        if sizes.shape != (n_rows,):
            raise ValueError(f"sizes has shape {sizes.shape}, expected ({n_rows},)")
        if sizes.min() < 1 or int(sizes.max()) > width:
            raise ValueError(f"sizes must lie in [1, width={width}]")
        if column_chunk is not None and column_chunk < 1:
            raise ValueError(f"column_chunk must be >= 1 or None, got {column_chunk}")
        dev = resolve_device(device)
        self.column_chunk = column_chunk if dev.type == "cpu" else None
        self.n_layers = int(n_layers)
        self.n_rows = n_rows
        self.width = int(width)
        adjacency = _scipy_adjacency(segment)
        # The full matrix and the active-row operators depend only on the segment, so all models
        # of a segment share them (cached); only the column blocks below depend on the sizes.
        self.register_buffer("adjacency", segment_adjacency(segment, dev, dtype), persistent=False)

        active = np.concatenate(
            [
                np.asarray(segment.active_users, dtype=np.int64),
                segment.n_users + np.asarray(segment.active_items, dtype=np.int64),
            ]
        )
        act_rows, act_cols = segment_cached(
            segment, ("active", dev, dtype), lambda: _rows_and_cols(adjacency, active, dtype, dev)
        )
        self.register_buffer("active", torch.from_numpy(active).to(dev), persistent=False)
        self.register_buffer("active_rows", act_rows, persistent=False)
        self.register_buffer("active_cols", act_cols, persistent=False)

        # Column block [lo, hi) of a prefix-masked input is non-zero only on rows S = {size > lo}:
        # the first forward product needs only A[:, S] and the last backward one only A[S, :].
        # Both are stored (A symmetric: A[:, S] = A[S, :]^T) so no batch transposes a CSR matrix.
        # Blocks where S is every row use the shared full matrix instead of a copy.
        self.blocks: list[tuple[int, int, bool]] = []
        edges = [0, *(e for e in BLOCK_EDGES if e < self.width), self.width]
        prev_count = -1
        for lo, hi in zip(edges[:-1], edges[1:], strict=True):
            rows = np.flatnonzero(sizes > lo)
            if rows.shape[0] == prev_count:  # same row set: extend the block
                self.blocks[-1] = (self.blocks[-1][0], hi, self.blocks[-1][2])
                continue
            prev_count = rows.shape[0]
            has_rows = rows.shape[0] < n_rows
            k = len(self.blocks)
            self.blocks.append((lo, hi, has_rows))
            if has_rows:
                sub_rows, sub_cols = _rows_and_cols(adjacency, rows, dtype, dev)
                self.register_buffer(f"block{k}_rows", torch.from_numpy(rows).to(dev), False)
                self.register_buffer(f"block{k}_row_op", sub_rows, persistent=False)
                self.register_buffer(f"block{k}_col_op", sub_cols, persistent=False)

    def _block(self, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row ids, ``A[S, :]`` and ``A[:, S]`` of column block ``k``."""
        return (
            getattr(self, f"block{k}_rows"),
            getattr(self, f"block{k}_row_op"),
            getattr(self, f"block{k}_col_op"),
        )

    def _matmul(
        self, op: torch.Tensor, z: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """``op @ z`` (written into ``out`` when given), over column chunks on CPU.

        Chunks of ``column_chunk`` columns keep a narrow slice of the dense operand in cache, and
        each is padded with zero columns to a multiple of 8 (or to 4): the CPU kernel runs such
        widths several times faster per column than odd ones (5 columns cost as much as 16).
        """
        chunk = self.column_chunk
        if chunk is None:
            product = op @ z.contiguous()
            return product if out is None else out.copy_(product)
        out = z.new_empty(op.shape[0], z.shape[1]) if out is None else out
        for lo in range(0, z.shape[1], chunk):
            part = z[:, lo : lo + chunk]
            width = part.shape[1]
            padded = 4 if width <= 4 else -(-width // 8) * 8
            if padded == width:
                out[:, lo : lo + width] = op @ part.contiguous()
            else:
                operand = part.new_zeros(part.shape[0], padded)
                operand[:, :width] = part
                out[:, lo : lo + width] = (op @ operand)[:, :width]
        return out

    def _input_product(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for prefix-masked ``x``, reading only the non-zero rows of each block."""
        out = x.new_empty(self.n_rows, self.width)
        for k, (lo, hi, has_rows) in enumerate(self.blocks):
            if has_rows:
                rows, _, col_op = self._block(k)
                self._matmul(col_op, x[:, lo:hi].index_select(0, rows), out[:, lo:hi])
            else:
                self._matmul(self.adjacency, x[:, lo:hi], out[:, lo:hi])
        return out

    def _output_product(self, z: torch.Tensor) -> torch.Tensor:
        """``A z`` computed only on the rows of each block (zeros elsewhere)."""
        out = z.new_zeros(self.n_rows, self.width)
        for k, (lo, hi, has_rows) in enumerate(self.blocks):
            if has_rows:
                rows, row_op, _ = self._block(k)
                out[:, lo:hi].index_copy_(0, rows, self._matmul(row_op, z[:, lo:hi]))
            else:
                self._matmul(self.adjacency, z[:, lo:hi], out[:, lo:hi])
        return out

    def forward_product(self, x: torch.Tensor, active_only: bool) -> torch.Tensor:
        """Computes the propagation (see :class:`LightGCNPropagation`).

        Args:
            x: Prefix-masked ``n_rows x width`` input.
            active_only: Return only the active rows (``len(active) x width``); for ``L >= 2``
                the last product then computes only those rows.

        Returns:
            ``(x + A x + ... + A^L x) / (L + 1)``, of every row or of the active rows.
        """
        n_layers = self.n_layers
        if n_layers == 0:
            return x.index_select(0, self.active) if active_only else x.clone()
        # Horner form x + A (x + A (... + A x)), updated in place: there is no autograd in here.
        h = self._input_product(x)
        for step in range(1, n_layers):
            z = h.add_(x)
            # BPR reads only active rows, so the last product skips the rest (for L = 1 the one
            # product is the block-split input product, which stays whole).
            if step == n_layers - 1 and active_only:
                out = x.index_select(0, self.active)
                return out.add_(self._matmul(self.active_rows, z)).div_(n_layers + 1)
            h = self._matmul(self.adjacency, z)
        out = h.add_(x).div_(n_layers + 1)
        return out.index_select(0, self.active) if active_only else out

    def backward_product(self, grad: torch.Tensor, active_only: bool) -> torch.Tensor:
        """Applies the transpose of :meth:`forward_product` to an output gradient.

        Args:
            grad: Gradient with respect to the output (of the active rows if ``active_only``).
            active_only: Whether the forward pass was restricted.

        Returns:
            The gradient with respect to ``x`` (``n_rows x width``), exact on the prefix-masked
            entries.
        """
        n_layers = self.n_layers
        grad = grad / (n_layers + 1)
        # Restricted (L >= 2), the gradient stays a set of active rows: the first product reads
        # only them and the later steps add them in place. Otherwise it is spread out first.
        restricted = active_only and n_layers >= 2
        if active_only and not restricted:
            grad = grad.new_zeros(self.n_rows, self.width).index_copy_(0, self.active, grad)
        if n_layers == 0:
            return grad
        # A is symmetric, so the adjoint of sum_l A^l is the same Horner chain applied to the
        # gradient, with the same matrices as the forward pass.
        k = grad
        for step in range(n_layers):
            if step == 0:
                z = grad
            else:
                z = k.index_add_(0, self.active, grad) if restricted else k.add_(grad)
            # The table's mask discards entries past each size: compute only block rows S.
            if step == n_layers - 1:
                k = self._output_product(z)
            elif step == 0 and restricted:
                k = self._matmul(self.active_cols, z)
            else:
                k = self._matmul(self.adjacency, z)
        return k.index_add_(0, self.active, grad) if restricted else k.add_(grad)


class LightGCNPropagation(torch.autograd.Function):
    """Differentiable ``x -> (x + A x + ... + A^L x) / (L + 1)`` over a :class:`PropagationPlan`.

    ``x`` must be prefix-masked by the plan's sizes (as the tables' dense views are); the gradient
    is exact on the prefix entries (the others are dropped by the tables). With ``active_only``
    the output holds the plan's active rows only. The backward pass multiplies by the same
    symmetric matrix as the forward pass.
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, plan: PropagationPlan, active_only: bool
    ) -> torch.Tensor:
        """Runs :meth:`PropagationPlan.forward_product` (arguments as there)."""
        # The map is linear, so backward needs only the operators: no tensor is saved, and the
        # forward pass may reuse its buffers in place.
        ctx.plan = plan
        ctx.active_only = active_only
        return plan.forward_product(x, active_only)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        """Runs :meth:`PropagationPlan.backward_product`; nothing for the plan and the flag."""
        return ctx.plan.backward_product(grad_output, ctx.active_only), None, None
