"""Sizers map a decision to one integer size per user and item under a parameter budget."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from scall_env.sizing._checks import _check_feasible, _check_freq, _check_size_bounds
from scall_env.sizing.budget import D_MAX, MIN_SIZE, split_budget
from scall_env.sizing.decision import SizeDecision
from scall_env.sizing.distributions import ShareDistribution, get_distribution
from scall_env.sizing.integer import assign_by_frequency, integer_sizes


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

    @property
    def user_share(self) -> float:
        """Effective user share ``user_params / params_used`` (0.0 when nothing is used)."""
        return self.user_params / self.params_used if self.params_used else 0.0


class Sizer(Protocol):
    """Maps a decision to embedding sizes for the current users and items under a budget."""

    def sizes(
        self,
        decision: SizeDecision | ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """Sizes for every user and item id.

        Args:
            decision: What the policy chose (its meaning is the sizer's; baselines ignore it).
            user_freq: Non-negative integer count per user id.
            item_freq: Non-negative integer count per item id.
            budget_params: Parameter budget (see :func:`budget_params`).
            d_max: Largest size.
            min_size: Smallest size.

        Returns:
            The sizes, within ``[min_size, d_max]`` and the budget.

        Raises:
            ValueError: A malformed decision or input, or an infeasible budget.
        """
        ...


class DistributionSizer:
    """SCALL's sizer: decision ``(ratio, alpha_user, alpha_item)``, each strictly in ``(0, 1)``.

    ``ratio`` splits the budget (:func:`split_budget`); each alpha shapes a share distribution
    whose noiseless shares become integer sizes (:func:`integer_sizes`), handed out by frequency
    rank (:func:`assign_by_frequency`). The decision is a :class:`SizeDecision` or its array
    form (:meth:`SizeDecision.coerce`); values outside the open interval raise, nothing is
    clipped. ``user_share`` of the result reports the effective split.

    Args:
        distribution: A registered distribution name or a :class:`ShareDistribution` instance.
    """

    def __init__(self, distribution: str | ShareDistribution = "powerlaw") -> None:
        self.distribution = (
            get_distribution(distribution) if isinstance(distribution, str) else distribution
        )

    def sizes(
        self,
        decision: SizeDecision | ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """See :meth:`Sizer.sizes`; ``decision`` is required (:meth:`SizeDecision.coerce`)."""
        choice = SizeDecision.coerce(decision)
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        user_total, item_total = split_budget(
            budget_params, users.size, items.size, choice.ratio, min_size=min_size, d_max=d_max
        )
        user_shares = self.distribution.shares(choice.alpha_user, users.size)
        item_shares = self.distribution.shares(choice.alpha_item, items.size)
        bounds = {"min_size": min_size, "d_max": d_max}
        return SizeAssignment.build(
            assign_by_frequency(integer_sizes(user_shares, user_total, **bounds), users),
            assign_by_frequency(integer_sizes(item_shares, item_total, **bounds), items),
            budget_params,
        )


class UniformSizer:
    """Baseline: every entity gets the same size, ``min(budget // entities, d_max)``.

    Sizes stay exactly equal (the classic baseline), so up to ``entities - 1`` parameters of the
    budget can go unused. The decision is ignored; only the lengths of the counts matter.
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
    ) -> SizeAssignment:
        """See :meth:`Sizer.sizes`; equal sizes for all users and items."""
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        _check_size_bounds(min_size, d_max)
        n = users.size + items.size
        _check_feasible(budget_params, n, min_size)
        size = min(budget_params // n, d_max) if n else d_max
        return SizeAssignment.build(
            np.full(users.size, size), np.full(items.size, size), budget_params
        )


class FrequencySizer:
    """Baseline: sizes proportional to ``(freq + 1) ** beta`` (Ginart et al.'s mixed dimensions).

    Users and items share one pool: a single water-filling over all entities spends the whole
    budget (:func:`integer_sizes`), so the user/item split follows the counts. The ``+ 1`` gives
    entities with no interactions in the segment a small positive share instead of zero. Equal
    counts: users before items, then smaller ids first. The decision is ignored.

    Args:
        beta: Exponent, finite and ``>= 0`` (0: near-equal sizes; 1: proportional to counts).
    """

    def __init__(self, beta: float) -> None:
        if isinstance(beta, bool) or not isinstance(beta, numbers.Real):
            raise TypeError(f"beta must be a real number, got {type(beta).__name__}")
        if not math.isfinite(beta) or beta < 0:
            raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
        self.beta = float(beta)

    def sizes(
        self,
        decision: SizeDecision | ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """See :meth:`Sizer.sizes`; frequency-proportional sizes for all users and items."""
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        counts = np.concatenate([users, items])
        _check_size_bounds(min_size, d_max)
        _check_feasible(budget_params, counts.size, min_size)
        order = np.argsort(-counts, kind="stable")
        # (f + 1) ** beta relative to the most frequent entity, via logs: the largest share is
        # exactly 1 and large counts or exponents cannot overflow.
        log_counts = np.log1p(counts[order].astype(np.float64))
        shares = np.exp(self.beta * (log_counts - log_counts[:1]))
        by_id = np.empty(counts.size, dtype=np.int64)
        by_id[order] = integer_sizes(shares, budget_params, min_size=min_size, d_max=d_max)
        return SizeAssignment.build(by_id[: users.size], by_id[users.size :], budget_params)
