"""Dense tables written from packed parameter vectors, differentiably.

A packed vector holds only the values that a dense table's non-zero positions need (see
:class:`~scall_env.recsys.embeddings.MaskedEmbedding`); :func:`unpack` writes such vectors into one
zero table and gathers the table's gradient back, and :class:`UnpackPlan` keeps a fixed set of
positions as buffers for the views a model builds every batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

Part = tuple[int, torch.Tensor | None, torch.Tensor]
"""``(k, src, dst)``: values ``src`` of packed vector ``k`` go to the flat positions ``dst`` of a
dense table (``src=None``: its first ``len(dst)`` values, in order)."""


class _Unpack(torch.autograd.Function):
    """Packed vectors -> one dense table; the gradient is gathered back (see :func:`unpack`)."""

    @staticmethod
    def forward(
        ctx: Any, shape: tuple[int, int], parts: Sequence[Part], *values: torch.Tensor
    ) -> torch.Tensor:
        """Writes each part's values to its positions in a zero ``shape`` table."""
        out = values[0].new_zeros(shape)
        flat = out.view(-1)
        for k, src, dst in parts:
            picked = values[k][: dst.shape[0]] if src is None else values[k].index_select(0, src)
            flat.index_copy_(0, dst, picked)
        # index tensors are fixed buffers of their model, never changed in place: kept by reference
        ctx.parts = parts
        ctx.lengths = [value.shape[0] for value in values]
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        """Gathers each packed value's gradient from its dense position (unused slots get 0)."""
        flat = grad.contiguous().view(-1)
        grads = [grad.new_empty(length) for length in ctx.lengths]
        filled = [0] * len(grads)  # leading values that a src=None part writes
        for k, src, dst in ctx.parts:
            if src is None:
                torch.index_select(flat, 0, dst, out=grads[k][: dst.shape[0]])
                filled[k] = dst.shape[0]
        for k, start in enumerate(filled):
            grads[k][start:] = 0.0
        for k, src, dst in ctx.parts:
            if src is not None:
                grads[k].index_add_(0, src, flat.index_select(0, dst))
        return (None, None, *grads)


def unpack(
    values: Sequence[torch.Tensor], parts: Sequence[Part], shape: tuple[int, int]
) -> torch.Tensor:
    """Builds a dense table from packed vectors, differentiably.

    Args:
        values: Packed vectors.
        parts: Which values go where (:data:`Part`); positions not written are zero.
        shape: Shape of the table.

    Returns:
        The dense table.
    """
    return _Unpack.apply(shape, tuple(parts), *values)


class UnpackPlan(nn.Module):
    """Fixed :func:`unpack` parts and shape, kept as buffers so that they move with the model.

    Attributes:
        shape: Shape of the dense table.
    """

    def __init__(self, parts: Sequence[Part], shape: tuple[int, int]) -> None:
        super().__init__()
        self.shape = shape
        self._layout: list[tuple[int, bool]] = []
        for i, (k, src, dst) in enumerate(parts):
            if src is not None:
                self.register_buffer(f"src{i}", src, persistent=False)
            self.register_buffer(f"dst{i}", dst, persistent=False)
            self._layout.append((k, src is not None))

    def forward(self, *values: torch.Tensor) -> torch.Tensor:
        """The dense table of ``values`` (the packed vectors, in the parts' numbering)."""
        parts = [
            (k, getattr(self, f"src{i}") if has_src else None, getattr(self, f"dst{i}"))
            for i, (k, has_src) in enumerate(self._layout)
        ]
        return unpack(values, parts, self.shape)
