"""Packed embedding tables: entity ``i`` owns exactly its first ``d_i`` values, nothing more.

A table is conceptually ``d_max`` wide with entity ``i`` using only the prefix ``j < d_i`` of its
row. Only those ``sum(d_i)`` values are stored (one flat, row-major *packed* parameter) and
optimised; the ``n x width`` dense view that the models compute with (``width = max(sizes)`` or a
common width of several tables, columns past a size are zero) is written from the packed values
when needed (:mod:`scall_env.recsys.packing`), and its gradient is gathered back. Values, dense
views and gradients are exactly those of a full ``n x width`` table read through a prefix mask;
the optimiser touches ``sum(d_i)`` values instead of ``n * width``.
:meth:`MaskedEmbedding.state_dict` keeps the dense layout (``weight``: ``n x width``, zeros past
each size; ``sizes``), so stored models and checkpoints read the same either way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from scall_env.recsys.device import resolve_device
from scall_env.recsys.packing import Part, unpack

BYTES_PER_PARAM = 4
"""Bytes of one float32 embedding parameter."""

PACK_ALIGN = 64
"""The packed layout keeps a dense table's last ``n * width % PACK_ALIGN`` positions verbatim.

Fused Adam on CPU runs a tensor in SIMD vectors and its last ``len % V`` values in scalar double
precision (``V``, the vector length, divides 64; the threads' chunks are whole cache lines). The
packed vector therefore ends with the dense table's last ``n * width % 64`` positions (the
columns past a size there as unused zeros) after the other values padded to a multiple of 64:
every value then gets exactly the arithmetic it gets in an ``n x width`` table.
"""


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
    """Embedding table where entity ``i`` stores and uses only its first ``sizes[i]`` values.

    Initial values are drawn from a normal distribution with standard deviation ``init_std``
    (the paper's ``N(0, 0.01)`` is read as standard deviation 0.01), as a full ``n x width`` draw
    of which each entity keeps its prefix (a dense masked table gets the same values).

    Attributes:
        d_max: Conceptual width of the table (largest allowed size).
        width: Columns of the dense view (``>= max(sizes)``).
        n_params: Parameters the table stores and trains: ``sum(sizes)``.
        n_head: Values stored in order at the start of :attr:`packed` (see :data:`PACK_ALIGN`).
        packed: The parameter: the ``sum(sizes)`` values in row-major order (entity ``i``'s
            ``j``-th is value ``offsets[i] + j``) at the slots :attr:`slots`, zeros elsewhere.
        sizes: ``int64`` buffer of per-entity sizes (saved in ``state_dict``).
        offsets: ``int64`` index of each entity's first value.
        positions: ``int64`` flat position in the dense view of each value.
        slots: ``int64`` index in :attr:`packed` of each value.
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
            width: Width of the dense view; defaults to ``max(sizes)``. Must lie in
                ``[max(sizes), d_max]`` (models sharing a propagation pass give user and item
                tables a common width).
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
        self.width = width
        self.n_params = int(sizes_np.sum())
        sizes_t = torch.from_numpy(sizes_np)
        positions = prefix_mask(sizes_t, width, dtype=torch.bool).view(-1).nonzero().squeeze(1)
        # Slot of each value in the packed vector (see PACK_ALIGN): values before the dense
        # table's last `dense % 64` positions in order, padding to a multiple of 64, then those
        # positions verbatim.
        dense = n * width
        tail_start = dense - dense % PACK_ALIGN
        self.n_head = int(torch.searchsorted(positions, tail_start))
        base = -(-self.n_head // PACK_ALIGN) * PACK_ALIGN
        slots = torch.arange(self.n_params)
        slots[self.n_head :] = base + positions[self.n_head :] - tail_start
        init = torch.randn(n, width, generator=generator) * init_std
        packed = init.new_zeros(base + dense - tail_start)
        packed[slots] = init.view(-1)[positions]
        dev = resolve_device(device)
        self.register_buffer("sizes", sizes_t.to(dev))
        self.register_buffer("offsets", (torch.cumsum(sizes_t, 0) - sizes_t).to(dev), False)
        self.register_buffer("positions", positions.to(dev), persistent=False)
        self.register_buffer("slots", slots.to(dev), persistent=False)
        self.packed = nn.Parameter(packed.to(dev))

    @property
    def num_entities(self) -> int:
        """Number of rows (entities)."""
        return int(self.sizes.shape[0])

    @property
    def n_bytes(self) -> int:
        """Bytes the table needs as float32: ``4 * sum(sizes)``."""
        return BYTES_PER_PARAM * self.n_params

    def parts(self, k: int = 0, shift: int = 0, width: int | None = None) -> list[Part]:
        """The :func:`unpack` parts of the whole table as packed vector ``k``.

        Args:
            k: Index of this table's packed vector among the values of :func:`unpack`.
            shift: Flat position of the table's first row in the dense table.
            width: Columns of the dense table (``>= self.width``; default ``self.width``).

        Returns:
            The head (in order) and the mirrored tail (see :data:`PACK_ALIGN`).
        """
        positions = self._positions_at(self.positions, width) + shift
        head, tail = positions[: self.n_head], positions[self.n_head :]
        return [(k, None, head), (k, self.slots[self.n_head :], tail)]

    def row_parts(
        self, ids: torch.Tensor, k: int = 0, shift: int = 0, width: int | None = None
    ) -> list[Part]:
        """The :func:`unpack` parts of the rows ``ids`` as packed vector ``k``, read into a
        ``len(ids) x width`` table.

        Args:
            ids: ``int64`` entity ids (on the table's device).
            k: Index of this table's packed vector among the values of :func:`unpack`.
            shift: Flat position of the first row in the dense table.
            width: Columns of the dense table (``>= self.width``; default ``self.width``).

        Returns:
            One part: indices into :attr:`packed` and their flat positions.
        """
        dst = prefix_mask(self.sizes[ids], self.width, dtype=torch.bool).view(-1).nonzero()
        dst = dst.squeeze(1)
        src = self.slots[self.offsets[ids][dst // self.width] + dst % self.width]
        return [(k, src, self._positions_at(dst, width) + shift)]

    def _positions_at(self, positions: torch.Tensor, width: int | None) -> torch.Tensor:
        """Flat positions in a ``self.width``-column table moved to a ``width``-column one."""
        if width is None or width == self.width:
            return positions
        return positions // self.width * width + positions % self.width

    def forward(self, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Reads the dense view (zeros past each size), differentiably.

        Args:
            ids: ``int64`` entity ids to read; every row when ``None``.

        Returns:
            ``len(ids) x width`` (or ``num_entities x width``) embeddings.
        """
        if ids is None:
            return unpack([self.packed], self.parts(), (self.num_entities, self.width))
        return unpack([self.packed], self.row_parts(ids), (ids.shape[0], self.width))

    @property
    def weight(self) -> torch.Tensor:
        """The detached dense ``num_entities x width`` table (what ``state_dict`` stores)."""
        return self.forward().detach()

    def full_weight(self) -> torch.Tensor:
        """Returns the detached ``num_entities x d_max`` table (zeros beyond each size)."""
        out = self.packed.new_zeros(self.num_entities, self.d_max)
        out[:, : self.width] = self.weight
        return out

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        """Stores the dense layout: ``weight`` (``n x width``) and ``sizes``."""
        weight = self.forward()
        destination[prefix + "weight"] = weight if keep_vars else weight.detach()
        destination[prefix + "sizes"] = self.sizes

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list[str],
        unexpected_keys: list[str],
        error_msgs: list[str],
    ) -> None:
        """Reads the dense layout of a table with the same sizes back into :attr:`packed`."""
        keys = {name: prefix + name for name in ("weight", "sizes")}
        missing = [key for key in keys.values() if key not in state_dict]
        if strict:
            unexpected_keys.extend(
                key for key in state_dict if key.startswith(prefix) and key not in keys.values()
            )
        if missing:
            missing_keys.extend(missing)
            return
        weight, sizes = state_dict[keys["weight"]], state_dict[keys["sizes"]]
        if not torch.equal(sizes.to(self.sizes.device), self.sizes) or tuple(weight.shape) != (
            self.num_entities,
            self.width,
        ):
            error_msgs.append(
                f"{prefix}weight/sizes: stored {tuple(weight.shape)} table with other sizes than "
                f"this {self.num_entities} x {self.width} table (use warm_start to change sizes)"
            )
            return
        with torch.no_grad():
            flat = weight.to(self.packed).reshape(-1)
            self.packed[self.slots] = flat[self.positions]

    @torch.no_grad()
    def warm_start(self, previous: MaskedEmbedding | Mapping[str, torch.Tensor]) -> None:
        """Copies a previous segment's values into this table, matching entities by global id.

        Entity ``i < min(previous rows, rows)`` keeps its previous values in the columns
        ``j < min(previous size, new size)``; its columns between the previous and the new size
        start at zero (as in the authors' code: a grown entity starts where it was, plus zeros).
        Entities new to this table keep their fresh initial values.

        Args:
            previous: The previous table, or its ``state_dict()`` (keys ``"weight"`` and
                ``"sizes"``).

        Raises:
            ValueError: If ``previous`` is a mapping without ``"weight"`` and ``"sizes"``, or its
                ``weight`` and ``sizes`` disagree in length.
        """
        if isinstance(previous, MaskedEmbedding):
            prev_w, prev_sizes = previous.weight, previous.sizes
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
        table = self.weight
        prev_w = prev_w[:n, :w].to(table)
        keep_sizes = torch.minimum(prev_sizes[:n].to(table.device), self.sizes[:n])
        keep = prefix_mask(keep_sizes, w, dtype=torch.bool)
        table[:n] = 0.0
        table[:n, :w] = torch.where(keep, prev_w, 0.0)
        self.packed[self.slots] = table.view(-1)[self.positions]
