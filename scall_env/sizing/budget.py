"""The parameter budget: how it is stated (:class:`Budget`) and split between users and items."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from fractions import Fraction

from scall_env.sizing._checks import (
    _check_count,
    _check_feasible,
    _check_open_unit,
    _check_size_bounds,
)

D_MAX = 256
"""Default largest embedding size (the width of the embedding table)."""
MIN_SIZE = 1
"""Default smallest embedding size."""
PARAMS_PER_MB = 250_000
"""float32 parameters per megabyte (8e6 bits / 32 bits)."""
BUDGET_TYPES = ("c", "B")
"""``"c"``: mean size per entity; ``"B"``: megabytes of float32 parameters."""


@dataclass(frozen=True)
class Budget:
    """A parameter budget as stated by the user, validated once on construction.

    Attributes:
        kind: ``"c"`` (mean size: ``c * (n_users + n_items)`` parameters) or ``"B"``
            (megabytes of float32: ``B * PARAMS_PER_MB`` parameters).
        value: The value of ``c`` or ``B``, stored as a finite ``float`` > 0.

    Raises:
        ValueError: Unknown kind, or a non-positive or non-finite value.
        TypeError: The value is not a real number (``bool`` included).
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_TYPES:
            raise ValueError(
                f"budget_type must be one of {BUDGET_TYPES} ('c': mean size per entity, "
                f"'B': megabytes of float32), got {self.kind!r}"
            )
        if isinstance(self.value, bool) or not isinstance(self.value, numbers.Real):
            raise TypeError(f"budget must be a real number, got {type(self.value).__name__}")
        try:
            value = float(self.value)
        except OverflowError:  # an int beyond the float range
            value = math.inf
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"budget must be a finite number > 0, got {self.value!r}")
        object.__setattr__(self, "value", value)

    def params(self, n_users: int, n_items: int) -> int:
        """Total number of embedding parameters the budget allows, rounded down.

        The product is computed exactly from the value's shortest decimal form, so ``c = 0.29``
        with 100 entities gives 29 parameters (not 28 from binary rounding).

        Args:
            n_users: Number of users (non-negative); used by ``"c"``.
            n_items: Number of items (non-negative); used by ``"c"``.

        Returns:
            The parameter budget, ``floor`` of the exact product, never above it.

        Raises:
            ValueError: A negative count.
            TypeError: A count is not an integer.
        """
        _check_count(n_users, "n_users")
        _check_count(n_items, "n_items")
        scale = n_users + n_items if self.kind == "c" else PARAMS_PER_MB
        return math.floor(Fraction(repr(self.value)) * scale)

    def __str__(self) -> str:
        """``kind=value`` with the value's shortest form, e.g. ``"c=32"`` or ``"B=0.5"``."""
        text = repr(self.value)
        return f"{self.kind}={text.removesuffix('.0')}"


def budget_params(budget_type: str, budget: float, n_users: int, n_items: int) -> int:
    """Total embedding parameters a budget allows, rounded down (see :meth:`Budget.params`).

    Raises:
        ValueError: Unknown budget type, a non-positive or non-finite budget, or a negative count.
        TypeError: The budget is not a real number, or a count is not an integer.
    """
    return Budget(budget_type, budget).params(n_users, n_items)


RATIO_BASES = ("budget", "free")
"""What ``ratio`` shares: the whole budget (the authors') or the budget above the minimums."""


def split_budget(
    total: int,
    n_users: int,
    n_items: int,
    ratio: float,
    *,
    min_size: int = MIN_SIZE,
    d_max: int = D_MAX,
    base: str = "budget",
) -> tuple[int, int]:
    """Split a parameter budget between users and items.

    With ``base="budget"`` (the authors' reading) the users ask for ``round(ratio * total)``
    parameters; with ``base="free"`` each side first gets its minimum ``n * min_size`` and the
    users ask for that plus ``round(ratio * free)`` of the ``free = total - (n_users + n_items) *
    min_size`` parameters (halves rounded up). The items get the rest. A side below its minimum
    takes what it lacks from the other; a side above its capacity ``n * d_max`` passes the excess
    to the other side, and what neither side can hold stays unused. So every ratio in ``(0, 1)``
    is feasible and never exceeds the budget, without clipping the request.

    Args:
        total: Parameter budget (non-negative integer).
        n_users: Number of users (non-negative).
        n_items: Number of items (non-negative).
        ratio: Requested user share, strictly inside ``(0, 1)``.
        min_size: Smallest size (``1 <= min_size <= d_max``).
        d_max: Largest size.
        base: ``"budget"`` or ``"free"`` (see above).

    Returns:
        ``(user_params, item_params)``; their sum is ``min(total, (n_users + n_items) * d_max)``.

    Raises:
        ValueError: Bad ``ratio``, ``base`` or sizes, or ``total < (n_users + n_items) *
            min_size``.
        TypeError: A count, size or the budget is not an integer.
    """
    _check_open_unit(ratio, "ratio")
    _check_size_bounds(min_size, d_max)
    _check_count(n_users, "n_users")
    _check_count(n_items, "n_items")
    _check_feasible(total, n_users + n_items, min_size)
    if base not in RATIO_BASES:
        raise ValueError(f"base must be one of {RATIO_BASES}, got {base!r}")
    user_min, item_min = n_users * min_size, n_items * min_size
    if base == "free":
        users = user_min + math.floor(float(ratio) * (total - user_min - item_min) + 0.5)
    else:
        users = max(user_min, math.floor(float(ratio) * total + 0.5))
    users = min(users, total - item_min)  # the items keep their minimum
    items = total - users
    user_cap, item_cap = n_users * d_max, n_items * d_max
    if users > user_cap:
        items, users = items + users - user_cap, user_cap
    if items > item_cap:
        users, items = min(user_cap, users + items - item_cap), item_cap
    return users, items
