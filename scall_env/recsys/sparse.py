"""Small helpers shared by the sampler, the evaluator, the models and the loss: sparse-matrix
conversions and a per-segment memo of what is built once per segment."""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from scall_env.recsys.device import resolve_device
from scall_env.segment import Segment

_INT32_MAX = np.iinfo(np.int32).max

_SEGMENT_CACHE: weakref.WeakKeyDictionary[Segment, dict[Any, Any]] = weakref.WeakKeyDictionary()


def segment_cached(segment: Segment, key: Any, build: Callable[[], Any]) -> Any:
    """Returns ``build()`` memoised per segment and key.

    The segment is held weakly (its entries vanish with it), and its matrices are assumed not to
    be modified in place: what is built from them is shared by every model, sampler and trial of
    the segment, so it must be treated as read-only.
    """
    entries = _SEGMENT_CACHE.setdefault(segment, {})
    if key not in entries:
        entries[key] = build()
    return entries[key]


def canonical_csr(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Returns a CSR copy of ``matrix`` with sorted indices and no duplicates.

    Args:
        matrix: Any scipy sparse matrix.

    Returns:
        The canonical ``scipy.sparse.csr_matrix`` (a copy; the input is left untouched).
    """
    out = sp.csr_matrix(matrix, copy=True)
    out.sum_duplicates()
    out.sort_indices()
    return out


def torch_csr(
    crow: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """Builds a torch sparse CSR tensor from trusted parts, without invariant checks.

    Args:
        crow: Row pointer (length ``shape[0] + 1``).
        cols: Column index of each stored value, sorted within rows.
        values: Stored values.
        shape: ``(rows, columns)``.

    Returns:
        The ``torch.sparse_csr`` tensor (on the device of its parts).
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")
        return torch.sparse_csr_tensor(crow, cols, values, size=shape, check_invariants=False)


def to_torch_csr(
    matrix: sp.spmatrix | sp.sparray,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> torch.Tensor:
    """Converts a scipy sparse matrix into a torch sparse CSR tensor.

    Indices are stored as ``int32`` when they fit (faster sparse-dense products on CPU).

    Args:
        matrix: Any scipy sparse matrix.
        dtype: Dtype of the values.
        device: Device of the result; ``"auto"`` picks CUDA when available.

    Returns:
        The matrix as a ``torch.sparse_csr`` tensor with sorted column indices.
    """
    csr = canonical_csr(matrix)
    fits = csr.nnz <= _INT32_MAX and max(csr.shape) <= _INT32_MAX
    index_dtype = np.int32 if fits else np.int64
    out = torch_csr(
        torch.from_numpy(csr.indptr.astype(index_dtype)),
        torch.from_numpy(csr.indices.astype(index_dtype)),
        torch.from_numpy(csr.data).to(dtype),
        csr.shape,
    )
    return out.to(resolve_device(device))
