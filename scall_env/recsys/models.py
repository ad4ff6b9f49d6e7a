"""Recommenders over packed embedding tables: a common base class, LightGCN, MF and a registry.

A model owns a user table and an item table (:class:`~scall_env.recsys.embeddings.MaskedEmbedding`,
sharing one dense width) and turns their dense ("raw") view, users' rows then items' rows, into
final embeddings with :meth:`Recommender.propagate`. Training reads only the segment's active
users and items (the rows BPR batches touch): :meth:`Recommender.training_embeddings`. A new model
is a subclass that implements ``propagate`` and is registered with :func:`register_model`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from torch import nn

from scall_env.recsys.device import resolve_device
from scall_env.recsys.embeddings import MaskedEmbedding, validate_sizes
from scall_env.recsys.packing import UnpackPlan
from scall_env.recsys.propagation import LightGCNPropagation, PropagationPlan
from scall_env.recsys.sampler import BPRBatch
from scall_env.segment import Segment


class _SquaredNorms(torch.autograd.Function):
    """Row-wise ``|x_i|^2``, whose backward ``x_i * 2 g_i`` is one pass over ``x`` (the values
    autograd's ``g_i * 2 x_i`` gives: doubling is exact)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        """The squared norm of each row."""
        ctx.save_for_backward(x)
        return x.square().sum(1)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        """``x * 2 grad`` (broadcast over the columns)."""
        (x,) = ctx.saved_tensors
        return x * (2 * grad).unsqueeze(1)


class Recommender(nn.Module, abc.ABC):
    """Base class: user and item tables plus a propagation from raw to final embeddings.

    Subclasses implement :meth:`propagate`; everything else (tables, regularisation, warm start,
    parameter accounting) is shared. Users and items carry global ids ``0..n-1``; the *joint*
    rows are the users then the items, and the *active* rows the segment's active users then its
    active items (the joint order restricted to them, as the sampler numbers them).

    Attributes:
        n_users: Number of users (rows of the user table).
        n_items: Number of items (rows of the item table).
        width: Columns of the dense views (:attr:`column_align`).
        user_table: User embeddings.
        item_table: Item embeddings.
        active_users: ``int64`` ids of the segment's active users (sorted).
        active_items: ``int64`` ids of its active items (sorted).
        active: Joint row of each active row: ``active_users``, then ``n_users + active_items``.
    """

    column_align: ClassVar[int] = 1
    """The dense views' width is the tables' rounded up to a multiple of this (if <= ``d_max``):
    extra zero columns change no score, and the CPU's sparse products are several times faster
    per column at multiples of 8."""

    rowwise: ClassVar[bool] = False
    """True when each row's final embedding depends on its own raw row only (MF): training then
    propagates just the active raw rows and never builds the full table."""

    def __init__(
        self,
        segment: Segment,
        user_sizes: np.ndarray,
        item_sizes: np.ndarray,
        *,
        d_max: int = 256,
        init_std: float = 0.01,
        seed: int = 0,
        device: str | torch.device = "auto",
    ) -> None:
        """Creates freshly initialised tables for the entities of ``segment``.

        Args:
            segment: The segment whose users and items the model embeds.
            user_sizes: Embedding size per user (length ``segment.n_users``, values in
                ``[1, d_max]``).
            item_sizes: Embedding size per item (length ``segment.n_items``, values in
                ``[1, d_max]``).
            d_max: Largest allowed size.
            init_std: Standard deviation of the initial values (the paper's ``N(0, 0.01)``).
            seed: Seed of the initial values.
            device: Device of the model; ``"auto"`` picks CUDA when available.

        Raises:
            ValueError: If the sizes have the wrong length or values outside ``[1, d_max]``.
        """
        super().__init__()
        self.n_users = int(segment.n_users)
        self.n_items = int(segment.n_items)
        users = validate_sizes(user_sizes, self.n_users, d_max, "user_sizes")
        items = validate_sizes(item_sizes, self.n_items, d_max, "item_sizes")
        width = int(max(users.max(), items.max()))
        # the dense views' width: the tables' own, or rounded up for faster products
        padded = -(-width // self.column_align) * self.column_align
        self.width = padded if padded <= d_max else width
        generator = torch.Generator().manual_seed(seed)
        dev = resolve_device(device)
        table_args: dict[str, Any] = {
            "d_max": d_max,
            "width": width,
            "init_std": init_std,
            "generator": generator,
            "device": dev,
        }
        self.user_table = MaskedEmbedding(users, **table_args)
        self.item_table = MaskedEmbedding(items, **table_args)
        active_users = torch.from_numpy(np.asarray(segment.active_users, dtype=np.int64)).to(dev)
        active_items = torch.from_numpy(np.asarray(segment.active_items, dtype=np.int64)).to(dev)
        self.register_buffer("active_users", active_users, persistent=False)
        self.register_buffer("active_items", active_items, persistent=False)
        self.register_buffer(
            "active", torch.cat([active_users, self.n_users + active_items]), persistent=False
        )
        # The two dense views built per batch (see raw and active_raw): their index buffers are
        # fixed for the model, so computed once.
        self.raw_view = UnpackPlan(
            [
                *self.user_table.parts(0, 0, self.width),
                *self.item_table.parts(1, self.n_users * self.width, self.width),
            ],
            (self.n_users + self.n_items, self.width),
        )
        n_active_users = active_users.shape[0]
        self.active_view = UnpackPlan(
            [
                *self.user_table.row_parts(active_users, 0, 0, self.width),
                *self.item_table.row_parts(
                    active_items, 1, n_active_users * self.width, self.width
                ),
            ],
            (n_active_users + active_items.shape[0], self.width),
        )

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.user_table.packed.device

    @property
    def d_max(self) -> int:
        """Largest allowed size."""
        return self.user_table.d_max

    @property
    def n_params(self) -> int:
        """Embedding parameters really needed under the sizes (users plus items)."""
        return self.user_table.n_params + self.item_table.n_params

    @property
    def n_bytes(self) -> int:
        """Bytes those parameters need as float32."""
        return self.user_table.n_bytes + self.item_table.n_bytes

    def raw(self) -> torch.Tensor:
        """The joint raw table: users' rows then items' rows, ``(n_users + n_items) x width``."""
        return self.raw_view(self.user_table.packed, self.item_table.packed)

    def raw_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the raw user and item tables (``n x width`` each, zeros past each size)."""
        raw = self.raw()
        return raw[: self.n_users], raw[self.n_users :]

    def active_raw(self) -> torch.Tensor:
        """The raw rows of the active users then the active items (``n_active x width``)."""
        return self.active_view(self.user_table.packed, self.item_table.packed)

    @abc.abstractmethod
    def propagate(self, raw: torch.Tensor, *, active_only: bool = False) -> torch.Tensor:
        """Turns the joint raw table into final embeddings (documented here once for every model).

        Args:
            raw: Joint raw table, ``(n_users + n_items) x width`` (users' rows, then items'); for
                a :attr:`rowwise` model in training, the raw active rows only.
            active_only: If True, return only the final embeddings of the :attr:`active` rows
                (the only ones BPR batches read); a model may skip work on the others.

        Returns:
            Final embeddings of the joint rows (or of the active rows), scored by dot product.
        """

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the final embeddings of every user and of every item."""
        final = self.propagate(self.raw())
        return final[: self.n_users], final[self.n_users :]

    def training_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """What a BPR batch's loss reads: raw rows (for the regularisation) and the final
        embeddings of the active rows (``n_active x width``, for the scores).

        The raw rows are the active ones for a :attr:`rowwise` model, which never builds the full
        table; otherwise the joint table the propagation reads anyway (rows of entities absent
        from a batch count zero times).
        """
        if self.rowwise:
            raw = self.active_raw()
            return raw, self.propagate(raw)
        raw = self.raw()
        return raw, self.propagate(raw, active_only=True)

    def regularization(self, raw: torch.Tensor, batch: BPRBatch) -> torch.Tensor:
        """Squared L2 norm of a batch's raw embeddings, divided by the batch size.

        Computed as ``sum_e count_e * |raw_e|^2`` with per-entity occurrence counts, which equals
        the sum over the batch's rows without gathering them.

        Args:
            raw: The raw rows of :meth:`training_embeddings`: the joint table or the active rows.
            batch: The batch (its per-user and per-item occurrence counts).

        Returns:
            Scalar ``(|E_users|^2 + |E_pos|^2 + |E_neg|^2) / batch size``.
        """
        norms = _SquaredNorms.apply(raw)
        if raw.shape[0] == self.n_users + self.n_items:
            user_sq, item_sq = norms[: self.n_users], norms[self.n_users :]
        else:
            # Spread over all users (items) before the dot products: zeros where the counts are
            # zero, so the sums run over the same terms in the same order as for full tables.
            n_active_users = self.active_users.shape[0]
            user_sq = norms.new_zeros(self.n_users).index_copy(
                0, self.active_users, norms[:n_active_users]
            )
            item_sq = norms.new_zeros(self.n_items).index_copy(
                0, self.active_items, norms[n_active_users:]
            )
        user_count, item_count = (c.to(norms.dtype) for c in (batch.user_count, batch.item_count))
        total = user_sq @ user_count + item_sq @ item_count
        return total / batch.size

    def warm_start(self, previous: Recommender | Mapping[str, torch.Tensor]) -> None:
        """Starts the tables from a previous model's values, matching entities by global id.

        See :meth:`MaskedEmbedding.warm_start` for the per-entity rule. Works across model types
        (e.g. an MF table can warm-start a LightGCN table).

        Args:
            previous: The previous model, or its ``state_dict()``.

        Raises:
            ValueError: If a state dict lacks the table entries.
        """
        for name in ("user_table", "item_table"):
            table: MaskedEmbedding = getattr(self, name)
            if isinstance(previous, Recommender):
                table.warm_start(getattr(previous, name))
            else:
                prefix = f"{name}."
                table.warm_start(
                    {k.removeprefix(prefix): v for k, v in previous.items() if k.startswith(prefix)}
                )


RecommenderT = TypeVar("RecommenderT", bound=type[Recommender])

MODELS: dict[str, type[Recommender]] = {}
"""Registered models by name (see :func:`register_model`)."""


def register_model(name: str) -> Callable[[RecommenderT], RecommenderT]:
    """Class decorator that registers a :class:`Recommender` subclass under ``name``.

    Args:
        name: Registry key (case-insensitive; stored lower-case).

    Returns:
        The decorator, which returns the class unchanged.

    Raises:
        ValueError: If the name is already taken.
    """
    key = name.lower()
    if key in MODELS:
        raise ValueError(f"model {key!r} is already registered")

    def decorator(cls: RecommenderT) -> RecommenderT:
        MODELS[key] = cls
        return cls

    return decorator


@register_model("mf")
class MF(Recommender):
    """Matrix factorisation: the final embeddings are the raw embeddings."""

    rowwise = True

    def propagate(self, raw: torch.Tensor, *, active_only: bool = False) -> torch.Tensor:
        """MF: the raw embeddings unchanged (of the active rows only, if asked)."""
        return raw.index_select(0, self.active) if active_only else raw


@register_model("lightgcn")
class LightGCN(Recommender):
    """LightGCN: mean of the layer outputs ``0..n_layers`` of ``E_{l+1} = A_hat E_l``.

    ``A_hat`` is the symmetric-normalised user-item adjacency of ``segment.train_graph``, shared
    by every model of the same segment; the propagation runs through a
    :class:`~scall_env.recsys.propagation.PropagationPlan` (sparse operators that skip the rows
    the size masks and the active set make irrelevant) and moves with the model.

    Attributes:
        n_layers: Number of propagation layers.
        plan: The propagation's sparse operators.
    """

    column_align = 8

    def __init__(
        self,
        segment: Segment,
        user_sizes: np.ndarray,
        item_sizes: np.ndarray,
        *,
        n_layers: int = 3,
        **kwargs: Any,
    ) -> None:
        """Creates the model.

        Args:
            segment: The segment whose users and items the model embeds; its ``train_graph`` is
                the propagation graph.
            user_sizes: Embedding size per user.
            item_sizes: Embedding size per item.
            n_layers: Number of propagation layers (>= 0; the paper uses 3).
            **kwargs: Passed to :class:`Recommender` (``d_max``, ``init_std``, ``seed``,
                ``device``).

        Raises:
            ValueError: If ``n_layers < 0`` or the sizes are invalid.
        """
        super().__init__(segment, user_sizes, item_sizes, **kwargs)
        if n_layers < 0:
            raise ValueError(f"n_layers must be >= 0, got {n_layers}")
        self.n_layers = int(n_layers)
        sizes = torch.cat([self.user_table.sizes, self.item_table.sizes]).cpu().numpy()
        self.plan = PropagationPlan(segment, sizes, self.width, self.n_layers, device=self.device)

    def propagate(self, raw: torch.Tensor, *, active_only: bool = False) -> torch.Tensor:
        """LightGCN: mean of layer outputs ``0..n_layers``, run through the sparse plan."""
        # users then items is the row order of A_hat: both tables go through each layer together
        return LightGCNPropagation.apply(raw, self.plan, active_only)


def make_model(
    name: str,
    segment: Segment,
    user_sizes: np.ndarray,
    item_sizes: np.ndarray,
    **kwargs: Any,
) -> Recommender:
    """Builds a registered model by name.

    Args:
        name: Registry key, e.g. ``"lightgcn"`` or ``"mf"`` (case-insensitive).
        segment: The segment whose users and items the model embeds.
        user_sizes: Embedding size per user (length ``segment.n_users``).
        item_sizes: Embedding size per item (length ``segment.n_items``).
        **kwargs: Model options (``d_max``, ``init_std``, ``seed``, ``device``, and per-model
            ones such as LightGCN's ``n_layers``).

    Returns:
        The freshly initialised model.

    Raises:
        ValueError: If ``name`` is not registered, or the model rejects its arguments' values.
    """
    key = name.lower()
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}")
    return MODELS[key](segment, user_sizes, item_sizes, **kwargs)
