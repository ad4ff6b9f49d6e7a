"""Budgeted integer embedding sizes: from an action (or a baseline rule) to one size per entity.

The parameter budget is stated as a mean size ``c`` or in megabytes ``B`` (:func:`budget_params`).
SCALL's action ``(ratio, alpha_user, alpha_item)`` splits that budget between users and items
(:func:`split_budget`), turns each alpha into the shape of a size distribution
(:class:`ShareDistribution`, pluggable through :func:`register_distribution`), and hands the
resulting sizes out by frequency rank. :func:`integer_sizes` makes sizes exact integers in
``[min_size, d_max]`` that never exceed the budget and waste less than ``d_max`` parameters.
A :class:`Sizer` maps a decision to sizes; :class:`DistributionSizer` is SCALL's, and
:class:`UniformSizer` and :class:`FrequencySizer` are baselines.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from fractions import Fraction
from typing import ClassVar, Protocol

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

D_MAX = 256
"""Default largest embedding size (the width of the embedding table)."""
MIN_SIZE = 1
"""Default smallest embedding size."""
PARAMS_PER_MB = 250_000
"""float32 parameters per megabyte (8e6 bits / 32 bits)."""
BUDGET_TYPES = ("c", "B")
"""``"c"``: mean size per entity; ``"B"``: megabytes of float32 parameters."""

# Shares below this fraction of the largest share are raised to it so that every breakpoint of
# the water-filling stays finite; such entities sit at min_size until the budget nears capacity.
_MIN_RELATIVE_SHARE = 1e-300


def budget_params(budget_type: str, budget: float, n_users: int, n_items: int) -> int:
    """Total number of embedding parameters a budget allows, rounded down.

    The product is computed exactly from the budget's shortest decimal form, so ``c = 0.29`` with
    100 entities gives 29 parameters (not 28 from binary rounding).

    Args:
        budget_type: ``"c"`` (mean size: ``c * (n_users + n_items)`` parameters) or ``"B"``
            (megabytes of float32: ``B * PARAMS_PER_MB`` parameters).
        budget: The value of ``c`` or ``B``; finite and positive.
        n_users: Number of users (non-negative); used by ``"c"``.
        n_items: Number of items (non-negative); used by ``"c"``.

    Returns:
        The parameter budget, ``floor`` of the exact product, never above it.

    Raises:
        ValueError: Unknown budget type, a non-positive or non-finite budget, or a negative count.
        TypeError: The budget is not a real number, or a count is not an integer.
    """
    if budget_type not in BUDGET_TYPES:
        raise ValueError(
            f"budget_type must be one of {BUDGET_TYPES} ('c': mean size per entity, "
            f"'B': megabytes of float32), got {budget_type!r}"
        )
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real):
        raise TypeError(f"budget must be a real number, got {type(budget).__name__}")
    value = float(budget)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"budget must be a finite number > 0, got {budget!r}")
    _check_count(n_users, "n_users")
    _check_count(n_items, "n_items")
    scale = n_users + n_items if budget_type == "c" else PARAMS_PER_MB
    return math.floor(Fraction(repr(value)) * scale)


class ShareDistribution(ABC):
    """A one-parameter family of positive distributions turned into noiseless size shares.

    ``alpha`` in ``(0, 1)`` maps affinely to the family parameter: ``param_at_0`` at
    ``alpha -> 0`` and ``param_at_1`` at ``alpha -> 1``. For every built-in family
    ``alpha -> 0`` is the most skewed shape and ``alpha -> 1`` the flattest. The shares of ``n``
    entities are the distribution's quantiles at the plotting positions ``(i - 0.5) / n`` of the
    upper tail (``i = 1..n``): the noiseless version of sorting ``n`` random draws, which also
    stays finite where expected order statistics do not (heavy tails). Subclasses set the class
    attributes and implement :meth:`upper_quantiles`.

    Attributes:
        name: Registry name.
        param_at_0: Family parameter at ``alpha -> 0``.
        param_at_1: Family parameter at ``alpha -> 1``.
    """

    name: ClassVar[str]
    param_at_0: ClassVar[float]
    param_at_1: ClassVar[float]

    def param(self, alpha: float) -> float:
        """The family parameter for ``alpha``.

        Args:
            alpha: Shape control, finite and strictly inside ``(0, 1)``.

        Returns:
            ``param_at_0 + alpha * (param_at_1 - param_at_0)``.

        Raises:
            ValueError: ``alpha`` is non-finite or outside the open interval ``(0, 1)``.
        """
        _check_open_unit(alpha, "alpha")
        return self.param_at_0 + float(alpha) * (self.param_at_1 - self.param_at_0)

    def shares(self, alpha: float, n: int) -> np.ndarray:
        """Noiseless size shares of ``n`` entities, largest first.

        Args:
            alpha: Shape control, finite and strictly inside ``(0, 1)``.
            n: Number of entities (non-negative).

        Returns:
            ``float64`` array of length ``n``: positive, non-increasing, summing to 1.

        Raises:
            ValueError: Bad ``alpha`` or negative ``n``.
            TypeError: ``n`` is not an integer.
        """
        param = self.param(alpha)
        _check_count(n, "n")
        upper_tail = (np.arange(1, n + 1, dtype=np.float64) - 0.5) / max(n, 1)
        values = np.asarray(self.upper_quantiles(upper_tail, param), dtype=np.float64)
        return values / values.sum() if n else values

    @abstractmethod
    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function: the value exceeded with probability ``p``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The family parameter.

        Returns:
            Positive values, non-increasing along ``p``, same shape as ``p``.
        """


class PowerLaw(ShareDistribution):
    """``scipy.stats.powerlaw(a)`` on ``[0, 1]``; ``a`` from 0.1 (skewed) to 30 (flat)."""

    name = "powerlaw"
    param_at_0 = 0.1
    param_at_1 = 30.0

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function of the power law with exponent ``a = param``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The exponent ``a``.

        Returns:
            Quantiles, non-increasing along ``p``.
        """
        return stats.powerlaw.isf(p, param)


class Pareto(ShareDistribution):
    """``scipy.stats.pareto(b)`` on ``[1, inf)``; shape ``b`` from 1 (heavy tail) to 30 (flat)."""

    name = "pareto"
    param_at_0 = 1.0
    param_at_1 = 30.0

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function of the Pareto law with shape ``b = param``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The shape ``b``.

        Returns:
            Quantiles, non-increasing along ``p``.
        """
        return stats.pareto.isf(p, param)


class TruncNormal(ShareDistribution):
    """Normal ``N(mu, 1)`` truncated to ``[0, inf)`` (``scipy.stats.truncnorm(-mu, inf, loc=mu)``).

    ``mu`` runs from -4 (an exponential-like tail, skewed) to 20 (nearly equal values). The
    quantiles are computed through ``scipy.stats.norm`` (same values, much faster than
    ``truncnorm.isf``).
    """

    name = "truncnorm"
    param_at_0 = -4.0
    param_at_1 = 20.0

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function of ``N(mu, 1)`` truncated to ``[0, inf)``, ``mu = param``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The location ``mu`` of the untruncated normal.

        Returns:
            Quantiles, non-increasing along ``p``.
        """
        return param + stats.norm.isf(p * stats.norm.sf(-param))


class LogNormal(ShareDistribution):
    """``scipy.stats.lognorm(s)``; log-scale ``s`` from 2 (skewed) down to 0.05 (flat)."""

    name = "lognormal"
    param_at_0 = 2.0
    param_at_1 = 0.05

    def upper_quantiles(self, p: np.ndarray, param: float) -> np.ndarray:
        """Inverse survival function of the log-normal law with shape ``s = param``.

        Args:
            p: Increasing upper-tail probabilities in ``(0, 1)``.
            param: The shape ``s`` (standard deviation of the log).

        Returns:
            Quantiles, non-increasing along ``p``.
        """
        return stats.lognorm.isf(p, param)


_DISTRIBUTIONS: dict[str, type[ShareDistribution]] = {
    cls.name: cls for cls in (PowerLaw, Pareto, TruncNormal, LogNormal)
}


def register_distribution(
    name: str, cls: type[ShareDistribution], *, replace: bool = False
) -> None:
    """Make a share distribution available by name.

    Args:
        name: Registry key (non-empty).
        cls: A concrete :class:`ShareDistribution` subclass, instantiated without arguments.
        replace: Allow overwriting an existing entry.

    Raises:
        ValueError: Empty name, or the name is taken and ``replace`` is false.
        TypeError: ``cls`` is not a :class:`ShareDistribution` subclass.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"distribution name must be a non-empty string, got {name!r}")
    if not (isinstance(cls, type) and issubclass(cls, ShareDistribution)):
        raise TypeError(f"cls must be a ShareDistribution subclass, got {cls!r}")
    if name in _DISTRIBUTIONS and not replace:
        raise ValueError(
            f"distribution {name!r} is already registered; pass replace=True to overwrite it"
        )
    _DISTRIBUTIONS[name] = cls


def available_distributions() -> tuple[str, ...]:
    """Registered distribution names, sorted.

    Returns:
        The names :func:`get_distribution` accepts.
    """
    return tuple(sorted(_DISTRIBUTIONS))


def get_distribution(name: str) -> ShareDistribution:
    """A fresh instance of a registered share distribution.

    Args:
        name: Registry key, e.g. ``"powerlaw"``.

    Returns:
        The distribution.

    Raises:
        ValueError: Unknown name (the message lists the known ones).
    """
    if name not in _DISTRIBUTIONS:
        raise ValueError(
            f"unknown distribution {name!r}; known: {', '.join(available_distributions())}"
        )
    return _DISTRIBUTIONS[name]()


def split_budget(
    total: int,
    n_users: int,
    n_items: int,
    ratio: float,
    *,
    min_size: int = MIN_SIZE,
    d_max: int = D_MAX,
) -> tuple[int, int]:
    """Split a parameter budget between users and items.

    Each side first gets its minimum ``n * min_size``; the users then get
    ``round(ratio * free)`` of the ``free = total - (n_users + n_items) * min_size`` parameters
    (halves rounded up) and the items the rest. A side above its capacity ``n * d_max`` passes
    the excess to the other side; what neither side can hold stays unused. So every ratio in
    ``(0, 1)`` is feasible and never exceeds the budget, without clipping the request.

    Args:
        total: Parameter budget (non-negative integer).
        n_users: Number of users (non-negative).
        n_items: Number of items (non-negative).
        ratio: Requested user share of the free budget, strictly inside ``(0, 1)``.
        min_size: Smallest size (``1 <= min_size <= d_max``).
        d_max: Largest size.

    Returns:
        ``(user_params, item_params)``; their sum is ``min(total, (n_users + n_items) * d_max)``.

    Raises:
        ValueError: Bad ``ratio`` or sizes, or ``total < (n_users + n_items) * min_size``.
        TypeError: A count, size or the budget is not an integer.
    """
    _check_open_unit(ratio, "ratio")
    _check_size_bounds(min_size, d_max)
    _check_count(n_users, "n_users")
    _check_count(n_items, "n_items")
    _check_feasible(total, n_users + n_items, min_size)
    free = total - (n_users + n_items) * min_size
    users = n_users * min_size + math.floor(float(ratio) * free + 0.5)
    items = total - users
    user_cap, item_cap = n_users * d_max, n_items * d_max
    if users > user_cap:
        items, users = items + users - user_cap, user_cap
    if items > item_cap:
        users, items = min(user_cap, users + items - item_cap), item_cap
    return users, items


def integer_sizes(
    shares: ArrayLike, total: int, *, min_size: int = MIN_SIZE, d_max: int = D_MAX
) -> np.ndarray:
    """Integer sizes proportional to shares under an exact parameter total.

    Water-filling finds the scale ``lam`` with ``sum(clip(lam * shares, min_size, d_max)) ==
    total`` exactly (piecewise-linear in ``lam``; solved between its breakpoints, no iteration);
    largest-remainder rounding then makes the sizes integers (equal remainders: the earlier,
    larger-share entity first). Zero shares count as vanishingly small positive ones.

    Args:
        shares: Non-negative, non-increasing weights (1-D, finite, not all zero).
        total: Parameter budget for these entities (non-negative integer).
        min_size: Smallest size (``1 <= min_size <= d_max``).
        d_max: Largest size.

    Returns:
        ``int64`` sizes in ``[min_size, d_max]``, non-increasing, summing to
        ``min(total, n * d_max)``: no waste, except past capacity where every size is ``d_max``.

    Raises:
        ValueError: Malformed shares or sizes, or ``total < n * min_size``.
        TypeError: ``total``, ``min_size`` or ``d_max`` is not an integer.
    """
    _check_size_bounds(min_size, d_max)
    weights = _check_shares(shares)
    n = weights.size
    _check_feasible(total, n, min_size)
    if total >= n * d_max:
        return np.full(n, d_max, dtype=np.int64)
    real = _water_fill(weights, total, min_size, d_max)
    sizes = np.floor(real)
    remainders = real - sizes
    # Positive remainders always cover the leftover; this keeps d_max safe even if they did not.
    remainders[sizes >= d_max] = -1.0
    grow = np.argsort(-remainders, kind="stable")[: total - int(sizes.sum())]
    sizes = sizes.astype(np.int64)
    sizes[grow] += 1
    return sizes


def _water_fill(weights: np.ndarray, total: int, low: int, high: int) -> np.ndarray:
    """Real sizes ``clip(lam * weights, low, high)`` summing to ``total``.

    Requires ``n * low <= total < n * high`` and non-increasing positive-maximum weights.
    ``g(lam) = sum(clip(lam * w, low, high))`` is non-decreasing and linear between the
    breakpoints ``low / w`` and ``high / w``; evaluate it at all of them, locate the segment
    that crosses ``total`` and interpolate.
    """
    n = weights.size
    rel = np.maximum(weights / weights[0], _MIN_RELATIVE_SHARE)
    floor_until = low / rel  # entity i sits at `low` while lam <= floor_until[i]; ascending
    cap_from = high / rel  # entity i sits at `high` once lam >= cap_from[i]; ascending
    tail_sums = np.concatenate([np.cumsum(rel[::-1])[::-1], [0.0]])
    points = np.concatenate([floor_until, cap_from])
    capped = np.searchsorted(cap_from, points, side="right")
    floored = n - np.searchsorted(floor_until, points, side="left")
    # Tail sums keep the free (middle) mass accurate: lam * tail_sums[capped] <= 2 * total.
    values = high * capped + low * floored + points * (tail_sums[capped] - tail_sums[n - floored])
    below = values < total
    if not below.any():
        return np.full(n, float(low))
    left = np.argmax(np.where(below, points, -np.inf))
    right = np.argmin(np.where(below, np.inf, points))
    step = (total - values[left]) / (values[right] - values[left])
    lam = points[left] + step * (points[right] - points[left])
    return np.clip(lam * rel, low, high)


def frequency_order(freq: ArrayLike) -> np.ndarray:
    """Entity ids from most to least frequent.

    Args:
        freq: Non-negative integer count per entity id.

    Returns:
        ``int64`` ids; equal counts keep the smaller id first (a stable argsort of ``-freq``).

    Raises:
        ValueError: ``freq`` is not a 1-D non-negative integer array.
    """
    counts = _check_freq(freq, "freq")
    return np.argsort(-counts, kind="stable")


def assign_by_frequency(sizes_by_rank: np.ndarray, freq: ArrayLike) -> np.ndarray:
    """Hand sizes out by frequency rank: the first size to the most frequent entity.

    Args:
        sizes_by_rank: Sizes, largest first (length = number of entities).
        freq: Non-negative integer count per entity id (ties: smaller id ranks first).

    Returns:
        ``int64`` sizes indexed by entity id.

    Raises:
        ValueError: ``freq`` is malformed or its length differs from ``sizes_by_rank``.
    """
    order = frequency_order(freq)
    if len(sizes_by_rank) != order.size:
        raise ValueError(
            f"got {len(sizes_by_rank)} sizes for {order.size} entities; lengths must match"
        )
    by_id = np.empty(order.size, dtype=np.int64)
    by_id[order] = sizes_by_rank
    return by_id


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
        decision: ArrayLike | None,
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
    rank (:func:`assign_by_frequency`). Inputs outside the open interval raise; nothing is
    clipped.

    Args:
        distribution: A registered distribution name or a :class:`ShareDistribution` instance.
    """

    def __init__(self, distribution: str | ShareDistribution = "powerlaw") -> None:
        self.distribution = (
            get_distribution(distribution) if isinstance(distribution, str) else distribution
        )

    def sizes(
        self,
        decision: ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """Sizes from the action ``(ratio, alpha_user, alpha_item)``.

        Args:
            decision: Array-like of shape ``(3,)``, each value finite and in ``(0, 1)``.
            user_freq: Non-negative integer count per user id.
            item_freq: Non-negative integer count per item id.
            budget_params: Parameter budget (non-negative integer).
            d_max: Largest size.
            min_size: Smallest size.

        Returns:
            The sizes; ``user_share`` reports the effective split.

        Raises:
            ValueError: A malformed action or input, or an infeasible budget.
        """
        ratio, alpha_user, alpha_item = _check_action(decision)
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        user_total, item_total = split_budget(
            budget_params, users.size, items.size, ratio, min_size=min_size, d_max=d_max
        )
        user_shares = self.distribution.shares(alpha_user, users.size)
        item_shares = self.distribution.shares(alpha_item, items.size)
        bounds = {"min_size": min_size, "d_max": d_max}
        return SizeAssignment.build(
            assign_by_frequency(integer_sizes(user_shares, user_total, **bounds), users),
            assign_by_frequency(integer_sizes(item_shares, item_total, **bounds), items),
            budget_params,
        )


class UniformSizer:
    """Baseline: every entity gets the same size, ``min(budget // entities, d_max)``.

    Sizes stay exactly equal (the classic baseline), so up to ``entities - 1`` parameters of the
    budget can go unused. The decision is ignored.
    """

    def sizes(
        self,
        decision: ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """Equal sizes for all users and items.

        Args:
            decision: Ignored.
            user_freq: Non-negative integer count per user id (only its length matters).
            item_freq: Non-negative integer count per item id (only its length matters).
            budget_params: Parameter budget (non-negative integer).
            d_max: Largest size.
            min_size: Smallest size.

        Returns:
            The sizes.

        Raises:
            ValueError: Malformed input, or a budget below ``min_size`` per entity.
        """
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
        decision: ArrayLike | None,
        user_freq: ArrayLike,
        item_freq: ArrayLike,
        budget_params: int,
        *,
        d_max: int = D_MAX,
        min_size: int = MIN_SIZE,
    ) -> SizeAssignment:
        """Frequency-proportional sizes for all users and items.

        Args:
            decision: Ignored.
            user_freq: Non-negative integer count per user id.
            item_freq: Non-negative integer count per item id.
            budget_params: Parameter budget (non-negative integer).
            d_max: Largest size.
            min_size: Smallest size.

        Returns:
            The sizes.

        Raises:
            ValueError: Malformed input or an infeasible budget.
        """
        users, items = _check_freq(user_freq, "user_freq"), _check_freq(item_freq, "item_freq")
        counts = np.concatenate([users, items])
        _check_size_bounds(min_size, d_max)
        _check_feasible(budget_params, counts.size, min_size)
        order = np.argsort(-counts, kind="stable")
        log_counts = np.log1p(counts[order].astype(np.float64))
        shares = np.exp(self.beta * (log_counts - log_counts[:1]))
        by_id = np.empty(counts.size, dtype=np.int64)
        by_id[order] = integer_sizes(shares, budget_params, min_size=min_size, d_max=d_max)
        return SizeAssignment.build(by_id[: users.size], by_id[users.size :], budget_params)


def _check_count(value: int, name: str) -> None:
    """Require a non-negative integer."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")


def _check_open_unit(value: float, name: str) -> None:
    """Require a finite real number strictly inside ``(0, 1)``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number in the open interval (0, 1), got {value!r}")
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ValueError(f"{name} must be finite and in the open interval (0, 1), got {value!r}")


def _check_size_bounds(min_size: int, d_max: int) -> None:
    """Require integers ``1 <= min_size <= d_max``."""
    _check_count(min_size, "min_size")
    _check_count(d_max, "d_max")
    if not 1 <= min_size <= d_max:
        raise ValueError(f"need 1 <= min_size <= d_max, got min_size={min_size}, d_max={d_max}")


def _check_feasible(total: int, n: int, min_size: int) -> None:
    """Require an integer budget of at least ``min_size`` parameters per entity."""
    _check_count(total, "budget (parameters)")
    if total < n * min_size:
        raise ValueError(
            f"budget of {total} parameters is below the minimum {n * min_size} "
            f"({n} entities x min_size {min_size})"
        )


def _check_shares(shares: ArrayLike) -> np.ndarray:
    """Require a 1-D finite, non-negative, non-increasing array that is not all zero."""
    weights = np.asarray(shares, dtype=np.float64)
    if weights.ndim != 1:
        raise ValueError(f"shares must be 1-D, got shape {weights.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError("shares must be finite and >= 0")
    if (np.diff(weights) > 0).any():
        raise ValueError("shares must be non-increasing (largest first)")
    if weights.size and weights[0] <= 0:
        raise ValueError("shares must not all be zero")
    return weights


def _check_freq(freq: ArrayLike, name: str) -> np.ndarray:
    """Require a 1-D array of non-negative integers; return it as ``int64``."""
    counts = np.asarray(freq)
    if counts.ndim != 1:
        raise ValueError(f"{name} must be 1-D (one count per id), got shape {counts.shape}")
    if counts.size and not np.issubdtype(counts.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {counts.dtype}")
    counts = counts.astype(np.int64)
    if (counts < 0).any():
        raise ValueError(f"{name} must be >= 0, got minimum {counts.min()}")
    return counts


def _check_action(decision: ArrayLike | None) -> tuple[float, float, float]:
    """Require ``(ratio, alpha_user, alpha_item)``: three finite values strictly in ``(0, 1)``."""
    if decision is None:
        raise ValueError("the action (ratio, alpha_user, alpha_item) is required, got None")
    try:
        action = np.asarray(decision, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"the action must be 3 real numbers, got {decision!r}") from err
    if action.shape != (3,):
        raise ValueError(
            f"the action must have shape (3,) (ratio, alpha_user, alpha_item), got {action.shape}"
        )
    ratio, alpha_user, alpha_item = action.tolist()
    for name, value in (("ratio", ratio), ("alpha_user", alpha_user), ("alpha_item", alpha_item)):
        _check_open_unit(value, name)
    return ratio, alpha_user, alpha_item
