"""Exact integer sizes from shares (water filling + rounding) and their hand-out by frequency."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from scall_env.sizing._checks import _check_feasible, _check_freq, _check_shares, _check_size_bounds
from scall_env.sizing.budget import D_MAX, MIN_SIZE

# Shares below this fraction of the largest share are raised to it so that every breakpoint of
# the water-filling stays finite; such entities sit at min_size until the budget nears capacity.
_MIN_RELATIVE_SHARE = 1e-300


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
    # Largest-remainder rounding: the real sizes sum to `total`, so the floors fall short by
    # the sum of the remainders, i.e. by fewer units than there are positive remainders; one
    # unit each goes to the largest remainders. Order is kept: among equal floors the earlier
    # (larger real) entity has the larger or equal remainder, and the stable sort puts it first.
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
    # Weights are sorted, so at any lam the capped entities are a prefix and the floored ones a
    # suffix; binary search counts both for all 2n breakpoints at once (O(n log n) overall).
    capped = np.searchsorted(cap_from, points, side="right")
    floored = n - np.searchsorted(floor_until, points, side="left")
    # The free (middle) entities contribute lam * sum(rel[capped:n - floored]). Taking it as a
    # difference of tail sums, not prefix sums, avoids cancellation against the large capped
    # weights: lam * tail_sums[capped] <= 2 * total, so the error stays far below one parameter.
    values = high * capped + low * floored + points * (tail_sums[capped] - tail_sums[n - floored])
    below = values < total
    if not below.any():  # only possible at total == n * low: everyone sits at the floor
        return np.full(n, float(low))
    # g is non-decreasing, so the largest breakpoint below `total` and the smallest at or above
    # it are neighbours; g is linear between them and the interpolation is exact.
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
        ``int64`` ids; equal counts put the newer entity (larger id) first, as the authors do.

    Raises:
        ValueError: ``freq`` is not a 1-D non-negative integer array.
    """
    counts = _check_freq(freq, "freq")
    # a stable sort of the reversed counts lists equal counts from the largest id down
    return counts.size - 1 - np.argsort(-counts[::-1], kind="stable")


def assign_by_frequency(sizes_by_rank: np.ndarray, freq: ArrayLike) -> np.ndarray:
    """Hand sizes out by frequency rank: the first size to the most frequent entity.

    Args:
        sizes_by_rank: Sizes, largest first (length = number of entities).
        freq: Non-negative integer count per entity id (ties: the larger, newer id ranks first).

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
