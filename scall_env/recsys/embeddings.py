"""Masked embedding tables: one row per entity, entity ``i`` uses only its first ``d_i`` columns.

A table is conceptually ``d_max`` wide, but columns at or beyond ``max(sizes)`` are zero for every
entity, so the table stores (and computes with) only ``width`` columns, where
``max(sizes) <= width <= d_max``. This is exact: the dropped columns would contribute nothing to
any dot product, propagation or gradient. :meth:`MaskedEmbedding.full_weight` gives the
``d_max``-wide view when one is needed (e.g. for a fixed-length observation).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import nn

from scall_env.recsys.device import resolve_device

BYTES_PER_PARAM = 4
"""Bytes of one float32 embedding parameter."""


def validate_sizes(sizes: np.ndarray | torch.Tensor, n: int, d_max: int, name: str) -> np.ndarray:
    """Checks an embedding-size array and returns it as ``int64`` numpy.

    Args:
        sizes: One size per entity.
        n: Required number of entities.
        d_max: Largest allowed size.
        name: Name used in error messages (e.g. ``"user_sizes"``).

    Returns:
        The sizes as a 1-D ``int64`` numpy array (a copy).

    Raises:
        ValueError: If ``sizes`` is not 1-D, not integral, has a length other than ``n``, is empty,
            or has values outside ``[1, d_max]``.
    """
    if isinstance(sizes, torch.Tensor):
        sizes = sizes.detach().cpu().numpy()
    arr = np.asarray(sizes)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != n:
        raise ValueError(f"{name} has length {arr.shape[0]}, expected {n}")
    if n == 0:
        raise ValueError(f"{name} must not be empty")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be integers, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 1 or hi > d_max:
        raise ValueError(f"{name} must lie in [1, {d_max}], got values in [{lo}, {hi}]")
    return arr.astype(np.int64)


def prefix_mask(
    sizes: torch.Tensor, width: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Builds the prefix mask ``mask[i, j] = 1 if j < sizes[i] else 0``.

    Args:
        sizes: ``int64`` sizes, one per entity.
        width: Number of columns of the mask.
        dtype: Dtype of the mask.

    Returns:
        A ``len(sizes) x width`` tensor of zeros and ones on the device of ``sizes``.
    """
    cols = torch.arange(width, device=sizes.device)
    return (cols.unsqueeze(0) < sizes.unsqueeze(1)).to(dtype)


class MaskedEmbedding(nn.Module):
    """Embedding table where entity ``i`` uses only its first ``sizes[i]`` columns.

    The masked entries are zero at initialisation, and the table is always read through the mask
    (``weight * mask``), so they get exactly zero gradient and, under optimisers without weight
    decay toward non-zero values (Adam, SGD), stay exactly zero.

    Initial values are drawn from a normal distribution with standard deviation ``init_std``
    (the paper's ``N(0, 0.01)`` is read as standard deviation 0.01).

    Attributes:
        d_max: Conceptual width of the table (largest allowed size).
        weight: Stored parameters, ``num_entities x width``.
        sizes: ``int64`` buffer of per-entity sizes (saved in ``state_dict``).
        mask: Float prefix mask, ``num_entities x width`` (not saved in ``state_dict``).
    """

    def __init__(
        self,
        sizes: np.ndarray | torch.Tensor,
        d_max: int = 256,
        *,
        width: int | None = None,
        init_std: float = 0.01,
        generator: torch.Generator | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        """Creates a freshly initialised table.

        Args:
            sizes: One size per entity, integers in ``[1, d_max]``.
            d_max: Largest allowed size (the conceptual table width).
            width: Stored width; defaults to ``max(sizes)``. Must lie in ``[max(sizes), d_max]``
                (models sharing a propagation pass give user and item tables a common width).
            init_std: Standard deviation of the initial values (must be positive).
            generator: CPU random generator for the initial values (seeded by the caller for
                reproducibility); the global generator when ``None``.
            device: Device of the parameters; ``"auto"`` picks CUDA when available.

        Raises:
            ValueError: If ``d_max < 1``, ``init_std <= 0``, the sizes are invalid, or ``width``
                is outside ``[max(sizes), d_max]``.
        """
        super().__init__()
        if d_max < 1:
            raise ValueError(f"d_max must be >= 1, got {d_max}")
        if not init_std > 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        n = len(sizes)
        sizes_np = validate_sizes(sizes, n, d_max, "sizes")
        max_size = int(sizes_np.max())
        width = max_size if width is None else int(width)
        if not max_size <= width <= d_max:
            raise ValueError(
                f"width must lie in [max(sizes)={max_size}, d_max={d_max}], got {width}"
            )
        self.d_max = int(d_max)
        sizes_t = torch.from_numpy(sizes_np)
        mask = prefix_mask(sizes_t, width)
        init = torch.randn(n, width, generator=generator) * init_std * mask
        dev = resolve_device(device)
        self.register_buffer("sizes", sizes_t.to(dev))
        self.register_buffer("mask", mask.to(dev), persistent=False)
        self.weight = nn.Parameter(init.to(dev))

    @property
    def num_entities(self) -> int:
        """Number of rows (entities)."""
        return int(self.weight.shape[0])

    @property
    def width(self) -> int:
        """Number of stored columns (``>= max(sizes)``)."""
        return int(self.weight.shape[1])

    @property
    def n_params(self) -> int:
        """Parameters the table really needs under its sizes: ``sum(sizes)``."""
        return int(self.sizes.sum().item())

    @property
    def n_bytes(self) -> int:
        """Bytes the table really needs as float32: ``4 * sum(sizes)``."""
        return BYTES_PER_PARAM * self.n_params

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Reads masked embeddings.

        Args:
            ids: ``int64`` entity ids to read; every row when ``None``.

        Returns:
            ``len(ids) x width`` (or ``num_entities x width``) masked embeddings.
        """
        if ids is None:
            return self.weight * self.mask
        return self.weight.index_select(0, ids) * self.mask.index_select(0, ids)

    def full_weight(self) -> torch.Tensor:
        """Returns the detached ``num_entities x d_max`` table (zeros beyond each size)."""
        out = self.weight.new_zeros(self.num_entities, self.d_max)
        out[:, : self.width] = (self.weight * self.mask).detach()
        return out

    @torch.no_grad()
    def warm_start(self, previous: MaskedEmbedding | Mapping[str, torch.Tensor]) -> None:
        """Copies a previous segment's values into this table, matching entities by global id.

        Entity ``i < min(previous rows, rows)`` keeps its previous values in the columns
        ``j < min(previous size, new size)``; its columns between the previous and the new size
        start at zero (as in the authors' code: a grown entity starts where it was, plus zeros),
        and those beyond the new size stay zero. Entities new to this table keep their fresh
        initial values.

        Args:
            previous: The previous table, or its ``state_dict()`` (keys ``"weight"`` and
                ``"sizes"``).

        Raises:
            ValueError: If ``previous`` is a mapping without ``"weight"`` and ``"sizes"``, or its
                ``weight`` and ``sizes`` disagree in length.
        """
        if isinstance(previous, MaskedEmbedding):
            prev_w, prev_sizes = previous.weight.detach(), previous.sizes
        else:
            missing = {"weight", "sizes"} - set(previous)
            if missing:
                raise ValueError(f"previous state lacks {sorted(missing)}")
            prev_w, prev_sizes = previous["weight"], previous["sizes"]
        if prev_w.ndim != 2 or prev_w.shape[0] != prev_sizes.shape[0]:
            raise ValueError(
                f"previous weight {tuple(prev_w.shape)} and sizes {tuple(prev_sizes.shape)} "
                "disagree"
            )
        n = min(self.num_entities, int(prev_w.shape[0]))
        w = min(self.width, int(prev_w.shape[1]))
        dev = self.weight.device
        prev_w = prev_w[:n, :w].to(device=dev, dtype=self.weight.dtype)
        keep_sizes = torch.minimum(prev_sizes[:n].to(dev), self.sizes[:n])
        keep = prefix_mask(keep_sizes, w, dtype=torch.bool)
        self.weight[:n].zero_()
        self.weight[:n, :w].copy_(torch.where(keep, prev_w, 0.0))
