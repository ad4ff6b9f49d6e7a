"""Small sparse-matrix helpers shared by the sampler, the evaluator, the models and the loss."""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp
import torch

from scall_env.recsys.device import resolve_device

_INT32_MAX = np.iinfo(np.int32).max


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
