"""Private validators shared by the sizing modules; each raises with what was wrong and why."""

from __future__ import annotations

import math
import numbers

import numpy as np
from numpy.typing import ArrayLike


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


def _real_array(value: object, name: str) -> np.ndarray:
    """``value`` as a ``float64`` array of real numbers (shape unchecked), for 3-number actions.

    ``np.asarray(value, dtype=np.float64)`` alone would silently drop the imaginary part of a
    complex array, parse numeric strings and turn booleans or ``None`` into numbers, so the
    element type is checked first: integers, floats, or objects that are all real numbers.
    """
    try:
        raw = np.asarray(value)
        real = raw.dtype.kind in "iuf" or (
            raw.dtype.kind == "O"
            and all(isinstance(x, numbers.Real) and not isinstance(x, bool) for x in raw.flat)
        )
        array = np.asarray(raw, dtype=np.float64) if real else None
    except (TypeError, ValueError, OverflowError):  # ragged, or an int too big for a float
        array = None
    if array is None:
        raise ValueError(f"{name} must be 3 real numbers, got {value!r}")
    return array


def _check_decision_array(decision: ArrayLike | None) -> tuple[float, float, float]:
    """Require ``(ratio, alpha_user, alpha_item)`` as 3 real numbers; ranges are checked later."""
    if decision is None:
        raise ValueError("the action (ratio, alpha_user, alpha_item) is required, got None")
    action = _real_array(decision, "the action")
    if action.shape != (3,):
        raise ValueError(
            f"the action must have shape (3,) (ratio, alpha_user, alpha_item), got {action.shape}"
        )
    ratio, alpha_user, alpha_item = action.tolist()
    return ratio, alpha_user, alpha_item


def _check_box_action(action: ArrayLike) -> np.ndarray:
    """Require 3 finite real numbers in ``[-1, 1]``; return them as ``float64``."""
    array = _real_array(action, "action")
    if array.shape != (3,):
        raise ValueError(f"action must have shape (3,), got {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"action must be finite, got {array.tolist()}")
    if np.any(np.abs(array) > 1.0):
        raise ValueError(f"action values must lie in [-1, 1], got {array.tolist()}")
    return array
