"""Recommenders over masked embedding tables: a common base class, LightGCN, MF and a registry.

A model owns a user table and an item table (:class:`~scall_env.recsys.embeddings.MaskedEmbedding`,
sharing one stored width) and turns their masked ("raw") embeddings into final embeddings with
:meth:`Recommender.propagate`. A new model is a subclass that implements ``propagate`` and is
registered with :func:`register_model`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from scall_env.recsys.device import resolve_device
from scall_env.recsys.embeddings import MaskedEmbedding, validate_sizes
from scall_env.recsys.propagation import LightGCNPropagation, PropagationPlan
from scall_env.segment import Segment


class Recommender(nn.Module, abc.ABC):
    """Base class: user and item masked tables plus a propagation from raw to final embeddings.

    Subclasses implement :meth:`propagate`; everything else (tables, regularisation, warm start,
    parameter accounting) is shared. Users and items carry global ids ``0..n-1``.

    Attributes:
        n_users: Number of users (rows of the user table).
        n_items: Number of items (rows of the item table).
        user_table: Masked user embeddings.
        item_table: Masked item embeddings.
    """

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

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.user_table.weight.device

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

    def raw_embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the masked user and item tables (``n x width`` each)."""
        return self.user_table(), self.item_table()

    @abc.abstractmethod
    def propagate(
        self, user_raw: torch.Tensor, item_raw: torch.Tensor, *, active_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turns raw embeddings into final embeddings (documented here once for every model).

        Args:
            user_raw: Masked user table, ``n_users x width``.
            item_raw: Masked item table, ``n_items x width``.
            active_only: If True, only the rows of the segment's active users and items (the
                only ones BPR batches touch) must be exact; a model may skip work on the others.

        Returns:
            Final user and item embeddings (same shapes), used for scoring by dot product.
        """

    def forward(self, *, active_only: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns the final embeddings of every user and every item.

        Args:
            active_only: See :meth:`propagate` (training uses True, evaluation False).

        Returns:
            Final user and item embeddings.
        """
        return self.propagate(*self.raw_embeddings(), active_only=active_only)

    def regularization(
        self,
        user_raw: torch.Tensor,
        item_raw: torch.Tensor,
        users: torch.Tensor,
        pos_items: torch.Tensor,
        neg_items: torch.Tensor,
    ) -> torch.Tensor:
        """Squared L2 norm of a batch's raw (masked) embeddings, divided by the batch size.

        Computed as ``sum_e count_e * |raw_e|^2`` with per-entity occurrence counts, which equals
        the sum over the batch's rows without gathering them.

        Args:
            user_raw: Masked user table (as returned by :meth:`raw_embeddings`).
            item_raw: Masked item table.
            users: ``int64`` user ids of the batch.
            pos_items: ``int64`` positive item ids (same length).
            neg_items: ``int64`` negative item ids (same length).

        Returns:
            Scalar ``(|E_users|^2 + |E_pos|^2 + |E_neg|^2) / len(users)``.
        """
        n_items = self.n_items
        user_count = torch.bincount(users, minlength=self.n_users).to(user_raw.dtype)
        item_count = torch.bincount(pos_items, minlength=n_items) + torch.bincount(
            neg_items, minlength=n_items
        )
        user_sq = user_raw.square().sum(1) @ user_count
        item_sq = item_raw.square().sum(1) @ item_count.to(item_raw.dtype)
        total = user_sq + item_sq
        return total / users.shape[0]

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
    """Matrix factorisation: the final embeddings are the raw masked embeddings."""

    def propagate(
        self, user_raw: torch.Tensor, item_raw: torch.Tensor, *, active_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """MF: the raw embeddings unchanged (``active_only`` is moot: there is no work to skip)."""
        return user_raw, item_raw


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
        self.plan = PropagationPlan(
            segment, sizes, self.user_table.width, self.n_layers, device=self.device
        )

    def propagate(
        self, user_raw: torch.Tensor, item_raw: torch.Tensor, *, active_only: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """LightGCN: mean of layer outputs ``0..n_layers``, run through the sparse plan."""
        # Users then items, the row order of A_hat: both tables go through each layer together.
        x = torch.cat([user_raw, item_raw])
        out = LightGCNPropagation.apply(x, self.plan, active_only)
        return out[: self.n_users], out[self.n_users :]


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
