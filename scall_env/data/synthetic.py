"""A seeded, vectorised simulator of a recommendation stream.

Users and items have power-law popularity and keep arriving through the stream; user activity
fades after arrival and item popularity can drift toward newer items. The same parameters always
give the same interactions (and the same fingerprint), so synthetic runs need no files at all.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scall_env.cache import digest
from scall_env.data.columns import Interactions, _finish

_SYNTHETIC_START = 1_000_000_000
_SYNTHETIC_MAX_GAP = 60
_SYNTHETIC_MAX_DRAWS = 8


def synthetic_interactions(
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_interactions: int = 60_000,
    user_exponent: float = 0.5,
    item_exponent: float = 0.8,
    drift: float = 1.0,
    user_drift: float = 3.0,
    initial_users: float = 0.1,
    initial_items: float = 0.5,
    seed: int = 0,
) -> Interactions:
    """Generate a seeded synthetic stream (fully vectorised).

    Users and items have power-law popularity: the entity of popularity rank ``r`` (1-based,
    ranks assigned at random) has weight ``r ** -exponent``. A share of the users and items exist
    from the start; the others arrive at uniform random times through the stream, so new ids keep
    appearing. Each interaction happens at a time ``t`` in [0, 1] of the stream and picks a user
    among those already arrived in proportion to ``weight * exp(-user_drift * age)`` and an item
    among those already arrived in proportion to ``weight * exp(-drift * age)``, where
    ``age = t - arrival``: users are most active soon after they join, and with ``drift > 0``
    item popularity fades with age and shifts toward newer items. (The age factor is the same
    for every entity up to ``exp(rate * arrival)``, so sampling stays a prefix-cumsum lookup.)

    Candidates are drawn until ``n_interactions`` distinct (user, item) pairs exist; the first
    occurrence of each pair is kept and a uniform subset of them is returned, so the stream has no
    duplicate pairs and still spans the whole time range.

    Raw ids are arrival ranks (``int64``, ``0`` arrived first), ratings are 1.0 and timestamps are
    strictly increasing integer seconds starting at 1e9 (gaps of 1 to 60 s).

    Args:
        n_users: Number of potential users (not all need to interact).
        n_items: Number of potential items.
        n_interactions: Number of interactions (rows) returned.
        user_exponent: Power-law exponent of user activity (0: uniform).
        item_exponent: Power-law exponent of item popularity (0: uniform).
        drift: Rate at which item popularity decays with age, per stream length (0: none).
        user_drift: Rate at which user activity decays with time since arrival (0: none).
        initial_users: Share of users present from the start, in (0, 1]; at least one is.
        initial_items: Share of items present from the start, in (0, 1]; at least one is.
        seed: Seed of the ``numpy`` random generator.

    Returns:
        The interactions, in time order.

    Raises:
        ValueError: Invalid parameters, or too many interactions for distinct pairs.
    """
    params = {
        "n_users": n_users,
        "n_items": n_items,
        "n_interactions": n_interactions,
        "user_exponent": user_exponent,
        "item_exponent": item_exponent,
        "drift": drift,
        "user_drift": user_drift,
        "initial_users": initial_users,
        "initial_items": initial_items,
        "seed": seed,
    }
    _check_synthetic(params)
    rng = np.random.default_rng(seed)
    user_arrival = _arrivals(rng, n_users, initial_users)
    item_arrival = _arrivals(rng, n_items, initial_items)
    user_cum = np.cumsum(_weights(rng, user_arrival, user_exponent, user_drift))
    item_cum = np.cumsum(_weights(rng, item_arrival, item_exponent, drift))
    draws = n_interactions + n_interactions // 10 + 1
    for _ in range(_SYNTHETIC_MAX_DRAWS):
        timestamps = _SYNTHETIC_START + np.cumsum(
            rng.integers(1, _SYNTHETIC_MAX_GAP + 1, size=draws)
        )
        position = (timestamps - timestamps[0]) / max(int(timestamps[-1] - timestamps[0]), 1)
        users = _pick(rng, position, user_arrival, user_cum)
        items = _pick(rng, position, item_arrival, item_cum)
        first = np.unique(users * n_items + items, return_index=True)[1]
        if first.size >= n_interactions:
            break
        draws = int(draws * 1.2 * n_interactions / first.size) + 1
    else:
        raise ValueError(
            f"could not draw {n_interactions} distinct (user, item) pairs from {n_users} users "
            f"and {n_items} items; lower n_interactions or the exponents"
        )
    keep = np.sort(first[rng.choice(first.size, size=n_interactions, replace=False)])
    frame = pd.DataFrame(
        {
            "user": users[keep],
            "item": items[keep],
            "rating": np.ones(n_interactions, dtype=np.float32),
            "timestamp": timestamps[keep],
        }
    )
    return _finish(frame, "synthetic", digest("synthetic", params), "synthetic_interactions")


def load_synthetic(data_dir: Path | None, **params: Any) -> Interactions:
    """Adapter of :func:`synthetic_interactions` for :func:`scall_env.data.load_interactions`."""
    return synthetic_interactions(**params)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_synthetic(params: dict[str, Any]) -> None:
    """Validate the parameters of :func:`synthetic_interactions`.

    Args:
        params: Parameter name -> value.

    Raises:
        ValueError: A parameter is out of range.
    """
    for name in ("n_users", "n_items", "n_interactions"):
        if not isinstance(params[name], int | np.integer) or params[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {params[name]!r}")
    if not isinstance(params["seed"], int | np.integer) or params["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {params['seed']!r}")
    for name in ("user_exponent", "item_exponent", "drift", "user_drift"):
        value = params[name]
        if not _is_real(value) or not math.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    for name in ("initial_users", "initial_items"):
        value = params[name]
        if not _is_real(value) or not 0 < value <= 1:
            raise ValueError(f"{name} must be a number in (0, 1], got {value!r}")
    if params["n_interactions"] > params["n_users"] * params["n_items"]:
        raise ValueError(
            f"n_interactions={params['n_interactions']} exceeds the "
            f"{params['n_users'] * params['n_items']} distinct (user, item) pairs"
        )


def _arrivals(rng: np.random.Generator, n: int, initial: float) -> np.ndarray:
    """Sorted arrival times in [0, 1): the first ``max(1, round(initial * n))`` arrive at 0."""
    n_initial = max(1, round(initial * n))
    return np.concatenate([np.zeros(n_initial), np.sort(rng.random(n - n_initial))])


def _weights(
    rng: np.random.Generator, arrival: np.ndarray, exponent: float, rate: float
) -> np.ndarray:
    """Sampling weights in arrival order: power law over random ranks times age decay.

    Args:
        rng: Random generator.
        arrival: Sorted arrival times in [0, 1).
        exponent: Power-law exponent: rank ``r`` (1-based, random) has weight ``r ** -exponent``.
        rate: Decay rate with age; ``exp(-rate * (t - arrival))`` is ``exp(rate * arrival)`` up
            to a factor shared by all entities at time ``t``, shifted here to stay <= 1.

    Returns:
        One weight per entity, ``float64``.
    """
    ranks = rng.permutation(arrival.size) + 1.0
    return ranks**-exponent * np.exp(rate * (arrival - 1.0))


def _pick(
    rng: np.random.Generator, position: np.ndarray, arrival: np.ndarray, cum_weight: np.ndarray
) -> np.ndarray:
    """Draw one arrived entity per stream position, with probability proportional to weight.

    Args:
        rng: Random generator.
        position: Stream positions in [0, 1].
        arrival: Sorted arrival times (the first is 0).
        cum_weight: Cumulative weights in arrival order.

    Returns:
        Entity indices (arrival ranks), ``int64``.
    """
    arrived = np.searchsorted(arrival, position, side="right")
    draw = rng.random(position.size) * cum_weight[arrived - 1]
    return np.minimum(np.searchsorted(cum_weight, draw, side="right"), arrived - 1).astype(np.int64)
