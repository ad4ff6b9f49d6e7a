"""Sizers map a decision to one integer size per user and item under a parameter budget."""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from scall_env.sizing._checks import _check_feasible, _check_freq, _check_size_bounds
from scall_env.sizing.budget import D_MAX, MIN_SIZE, RATIO_BASES, split_budget
from scall_env.sizing.decision import SizeDecision
from scall_env.sizing.distributions import ShareDistribution, get_distribution
from scall_env.sizing.integer import assign_by_frequency, frequency_order, integer_sizes


@dataclass(frozen=True, eq=False)
class SizeAssignment:
    """Embedding sizes of one segment and what they cost.

    Attributes:
        user_sizes: ``int64`` size per user id (read-only).
        item_sizes: ``int64`` size per item id (read-only).
        budget_params: The parameter budget.
        user_params: Parameters the users use (sum of ``user_sizes``).
        item_params: Parameters the items use (sum of ``item_sizes``).
    """

    user_sizes: np.ndarray
    item_sizes: np.ndarray
    budget_params: int
    user_params: int
    item_params: int

    @classmethod
    def build(
        cls, user_sizes: np.ndarray, item_sizes: np.ndarray, budget_params: int
    ) -> SizeAssignment:
        """Freeze the size arrays and total them.

        Args:
            user_sizes: Size per user id.
            item_sizes: Size per item id.
            budget_params: The parameter budget.

        Returns:
            The assignment, with read-only ``int64`` copies of the arrays.
        """
        users = np.array(user_sizes, dtype=np.int64)
        items = np.array(item_sizes, dtype=np.int64)
        users.flags.writeable = False
        items.flags.writeable = False
        return cls(users, items, int(budget_params), int(users.sum()), int(items.sum()))

    @property
    def params_used(self) -> int:
        """Parameters used by users and items together (never above ``budget_params``)."""
        return self.user_params + self.item_params

    def check(self, n_users: int, n_items: int, *, d_max: int, min_size: int, source: str) -> None:
        """Raise ``ValueError`` unless these sizes fit the entities, the bounds and the budget.

        Built-in sizers never fail it; it guards what a user's sizer returns.

        Args:
            n_users: Users that need a size.
            n_items: Items that need a size.
            d_max: Largest allowed size.
            min_size: Smallest allowed size.
            source: Who made the sizes (named in the message).
        """
        for side, sizes, n in (
            ("user", self.user_sizes, n_users),
            ("item", self.item_sizes, n_items),
        ):
            if sizes.shape != (n,):
                raise ValueError(f"{source} gave {sizes.shape} {side} sizes for {n} {side}s")
            if n and not min_size <= sizes.min() <= sizes.max() <= d_max:
                raise ValueError(
                    f"{source} gave {side} sizes in [{sizes.min()}, {sizes.max()}], outside "
                    f"[min_size={min_size}, d_max={d_max}]"
                )
        if self.params_used > self.budget_params:
            raise ValueError(
                f"{source} uses {self.params_used} parameters, over the budget of "
                f"{self.budget_params}"
            )

    def summary(self) -> dict[str, int | float]:
        """``{user,item}_size_{min,mean,max}`` (0 for a side without entities)."""
        out: dict[str, int | float] = {}
        for side, sizes in (("user", self.user_sizes), ("item", self.item_sizes)):
            out[f"{side}_size_min"] = int(sizes.min()) if sizes.size else 0
            out[f"{side}_size_mean"] = float(sizes.mean()) if sizes.size else 0.0
            out[f"{side}_size_max"] = int(sizes.max()) if sizes.size else 0
        return out

    @property
    def user_share(self) -> float:
        """Effective user share ``user_params / params_used`` (0.0 when nothing is used)."""
        return self.user_params / self.params_used if self.params_used else 0.0


@dataclass(frozen=True)
class SizingRequest:
    """What a sizer sizes: validated counts, the budget and the size bounds.

    Attributes:
        user_freq: ``int64`` count per user id.
        item_freq: ``int64`` count per item id.
        budget_params: Parameter budget, at least ``min_size`` per entity.
        d_max: Largest size.
        min_size: Smallest size.
    """

    user_freq: np.ndarray
    item_freq: np.ndarray
    budget_params: int
    d_max: int
    min_size: int

    @property
    def bounds(self) -> dict[str, int]:
        """``{"min_size": ..., "d_max": ...}`` for the integer-size helpers."""
        return {"min_size": self.min_size, "d_max": self.d_max}


class Sizer(ABC):
    """Maps a decision to embedding sizes for the current users and items under a budget.

    Subclasses implement :meth:`assign`; :meth:`sizes` validates the input once and calls it.
    """

    def sizes(
        self,
        decision: SizeDecision | ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
        **options: Any,
    ) -> SizeAssignment:
        """Sizes for every user and item id.

        Args:
            decision: What the policy chose (its meaning is the sizer's; baselines ignore it).
            user_freq: Non-negative integer count per user id.
            item_freq: Non-negative integer count per item id.
            budget_params: Parameter budget (see :func:`budget_params`).
            d_max: Largest size.
            min_size: Smallest size.
            **options: The sizer's own options (e.g. ``exact`` of :class:`DistributionSizer`).

        Returns:
            The sizes, within ``[min_size, d_max]`` and the budget.

        Raises:
            ValueError: A malformed decision or input, an infeasible budget, or sizes from
                :meth:`assign` that break the bounds or the budget (a subclass's bug).
        """
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        _check_size_bounds(min_size, d_max)
        _check_feasible(budget_params, users.size + items.size, min_size)
        request = SizingRequest(users, items, int(budget_params), int(d_max), int(min_size))
        result = self.assign(decision, request, **options)
        result.check(
            users.size, items.size, d_max=d_max, min_size=min_size, source=type(self).__name__
        )
        return result

    @abstractmethod
    def assign(
        self, decision: SizeDecision | ArrayLike | None, request: SizingRequest
    ) -> SizeAssignment:
        """The sizes of a validated request (see :meth:`sizes`)."""


class DistributionSizer(Sizer):
    """SCALL's sizer: decision ``(ratio, alpha_user, alpha_item)``, each strictly in ``(0, 1)``.

    ``ratio`` splits the budget (:func:`split_budget` with ``base=ratio_base``); each alpha
    shapes a share distribution whose noiseless shares, times the side's budget, are the
    *unclipped* sizes (:meth:`unclipped`). Exact sizing (:func:`integer_sizes`: clipped to
    ``[min_size, d_max]``, renormalised, rounded) spends each side's budget exactly; the authors'
    trial sizing (``exact=False``) rounds ``max(min_size, unclipped)`` and caps it at ``d_max``,
    so skewed or lopsided decisions use less than the budget. Sizes are handed out by frequency
    rank (:func:`assign_by_frequency`). The decision is a :class:`SizeDecision` or its array form
    (:meth:`SizeDecision.coerce`); values outside the open interval raise, nothing is clipped.

    Args:
        distribution: A registered distribution name or a :class:`ShareDistribution` instance.
        ratio_base: ``"budget"`` (``ratio`` of the whole budget, the authors') or ``"free"``
            (of the budget above the minimum sizes).
    """

    def __init__(
        self, distribution: str | ShareDistribution = "powerlaw", ratio_base: str = "budget"
    ) -> None:
        self.distribution = (
            get_distribution(distribution) if isinstance(distribution, str) else distribution
        )
        if ratio_base not in RATIO_BASES:
            raise ValueError(f"ratio_base must be one of {RATIO_BASES}, got {ratio_base!r}")
        self.ratio_base = ratio_base

    def unclipped(
        self,
        decision: SizeDecision | ArrayLike | None,
        n_users: int,
        n_items: int,
        budget_params: int,
        *,
        min_size: int = MIN_SIZE,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Real sizes ``share * side budget`` per side, largest first, before any clipping
        (``min_size`` matters only to ``ratio_base="free"``).

        The side budgets are the request itself (``ratio * budget`` and the rest, with
        ``ratio_base="budget"``), before the minimums and capacities that :func:`split_budget`
        enforces: what the authors' trial sizes and the spread in their state are made of.
        """
        choice = SizeDecision.coerce(decision)
        user_side = float(choice.ratio) * budget_params
        if self.ratio_base == "free":
            free = budget_params - (n_users + n_items) * min_size
            user_side = n_users * min_size + float(choice.ratio) * free
        return (
            self.distribution.shares(choice.alpha_user, n_users) * user_side,
            self.distribution.shares(choice.alpha_item, n_items) * (budget_params - user_side),
        )

    def assign(
        self,
        decision: SizeDecision | ArrayLike | None,
        request: SizingRequest,
        exact: bool = True,
    ) -> SizeAssignment:
        """See :meth:`Sizer.sizes`; ``exact=False`` gives the authors' uncorrected trial sizes.

        Uncorrected sizes that would exceed the budget (many shares below ``min_size``, all
        raised to it) fall back to exact sizing: the budget is never exceeded.
        """
        users, items, budget = request.user_freq, request.item_freq, request.budget_params
        if not exact:
            reals = self.unclipped(
                decision, users.size, items.size, budget, min_size=request.min_size
            )
            user_sizes, item_sizes = (
                np.minimum(np.rint(np.maximum(real, request.min_size)), request.d_max)
                for real in reals
            )
            if user_sizes.sum() + item_sizes.sum() <= budget:
                return SizeAssignment.build(
                    assign_by_frequency(user_sizes, users),
                    assign_by_frequency(item_sizes, items),
                    budget,
                )
        (user_shares, user_total), (item_shares, item_total) = self._sides(
            decision, users.size, items.size, budget, request.d_max, request.min_size
        )
        return SizeAssignment.build(
            assign_by_frequency(integer_sizes(user_shares, user_total, **request.bounds), users),
            assign_by_frequency(integer_sizes(item_shares, item_total, **request.bounds), items),
            budget,
        )

    def _sides(
        self,
        decision: SizeDecision | ArrayLike | None,
        n_users: int,
        n_items: int,
        budget_params: int,
        d_max: int,
        min_size: int,
    ) -> tuple[tuple[np.ndarray, int], tuple[np.ndarray, int]]:
        """``((user shares, user budget), (item shares, item budget))`` of a decision."""
        choice = SizeDecision.coerce(decision)
        user_total, item_total = split_budget(
            budget_params,
            n_users,
            n_items,
            choice.ratio,
            min_size=min_size,
            d_max=d_max,
            base=self.ratio_base,
        )
        return (
            (self.distribution.shares(choice.alpha_user, n_users), user_total),
            (self.distribution.shares(choice.alpha_item, n_items), item_total),
        )


class PooledSizer(Sizer):
    """A baseline that sizes users and items as one pool of entities and ignores the decision.

    Subclasses implement :meth:`pooled_sizes`; the pooled counts are users first, then items.
    """

    def assign(
        self, decision: SizeDecision | ArrayLike | None, request: SizingRequest
    ) -> SizeAssignment:
        """See :meth:`Sizer.sizes`; the decision is ignored."""
        users = request.user_freq.size
        by_id = self.pooled_sizes(np.concatenate([request.user_freq, request.item_freq]), request)
        return SizeAssignment.build(by_id[:users], by_id[users:], request.budget_params)

    @abstractmethod
    def pooled_sizes(self, counts: np.ndarray, request: SizingRequest) -> np.ndarray:
        """Sizes of the pooled entities (users then items), within the request's budget/bounds.

        Args:
            counts: Non-negative ``int64`` count per pooled entity.
            request: The validated request (budget at least ``min_size`` per entity).
        """


class UniformSizer(PooledSizer):
    """Baseline: every entity gets the same size, ``min(budget // entities, d_max)``.

    Sizes stay exactly equal (the classic baseline), so up to ``entities - 1`` parameters of the
    budget can go unused. Only the number of entities matters.
    """

    def pooled_sizes(self, counts: np.ndarray, request: SizingRequest) -> np.ndarray:
        """Equal sizes."""
        d_max = request.d_max
        size = min(request.budget_params // counts.size, d_max) if counts.size else d_max
        return np.full(counts.size, size, dtype=np.int64)


class FrequencySizer(PooledSizer):
    """Baseline: sizes proportional to ``(freq + 1) ** beta`` (Ginart et al.'s mixed dimensions).

    Users and items share one pool: a single water-filling over all entities spends the whole
    budget (:func:`integer_sizes`), so the user/item split follows the counts. The ``+ 1`` gives
    entities with no interactions in the segment a small positive share instead of zero. Equal
    counts: as :func:`frequency_order` over users then items (items first, larger ids first).

    Args:
        beta: Exponent, finite and ``>= 0`` (0: near-equal sizes; 1: proportional to counts).
    """

    def __init__(self, beta: float) -> None:
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta must be a real number, got {type(beta).__name__}")
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        self.beta = float(beta)

    def pooled_sizes(self, counts: np.ndarray, request: SizingRequest) -> np.ndarray:
        """Frequency-proportional sizes."""
        order = frequency_order(counts)
        # (f + 1) ** beta relative to the most frequent entity, via logs: the largest share is
        # exactly 1 and large counts or exponents cannot overflow.
        log_counts = np.log1p(counts[order].astype(np.float64))
        shares = np.exp(self.beta * (log_counts - log_counts[:1]))
        by_id = np.empty(counts.size, dtype=np.int64)
        by_id[order] = integer_sizes(shares, request.budget_params, **request.bounds)
        return by_id
