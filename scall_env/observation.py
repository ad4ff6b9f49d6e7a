"""The two observation layouts of :class:`~scall_env.env.ScallEnv`: the authors' and ours.

Both describe the segment being searched with a fixed number of values whatever its number of
users and items: pooled frequency curves, the budget's last outcome, the user share, mean
embeddings and the spread of the last sizes.

* ``"paper"`` (the authors' state, ``2 * n_groups + 2 * d_max + 4`` values, 1028 with the
  defaults): frequencies pooled in windows of ``ceil(n / n_groups)`` entities with trailing
  zeros, the raw fitness ratio of the last trial, the user share, the raw mean embeddings of the
  last *trial* model, and the spread of the unclipped sizes over ``d_max - 1`` (255). Several
  entries are unbounded, so the space is an honest ``Box(-inf, inf)``.
* ``"bounded"`` (ours, ``2 * n_groups + 2 * d_max + 6`` values in ``[-1, 1]``): frequencies
  pooled so that fewer entities than groups repeat rather than pad, ``tanh`` of the last reward
  and of the committed model's mean embeddings, the spread of the sizes over ``d_max``, and the
  search progress (trials over the most a segment can have) and the segment's place in the
  stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from gymnasium import spaces

from scall_env.recsys import Recommender
from scall_env.segment import Segment

REWARD_SCALE = 10.0
"""Rewards are ``REWARD_SCALE * (fitness / reference - low) / (high - low)``."""


def pooled_frequencies(freq: np.ndarray, n_groups: int) -> np.ndarray:
    """Bounded layout: sorted (descending), min-max normalised frequencies in ``n_groups`` groups.

    Group ``g`` averages ranks ``[g*n // n_groups, (g+1)*n // n_groups)``; when there are fewer
    entities than groups, an empty group repeats the entity at its start, so the curve keeps its
    shape whatever ``n``. A constant frequency vector normalises to zeros. Returns ``float32``
    values in ``[0, 1]``, non-increasing.
    """
    values = np.sort(np.asarray(freq, dtype=np.float64))[::-1]
    span = values[0] - values[-1]
    values = (values - values[-1]) / span if span > 0 else np.zeros_like(values)
    n = len(values)
    starts = (np.arange(n_groups, dtype=np.int64) * n) // n_groups
    counts = np.maximum(np.diff(np.r_[starts, n]), 1)
    return (np.add.reduceat(values, starts) / counts).astype(np.float32)


def paper_pooled_frequencies(freq: np.ndarray, n_groups: int) -> np.ndarray:
    """The authors' pooling: windows of ``ceil(n / n_groups)`` ranks, missing groups are 0.

    Frequencies are sorted descending and min-max normalised (a constant vector becomes ones);
    window ``g`` averages ranks ``[g*w, (g+1)*w)`` (the last one may be shorter).
    """
    values = np.sort(np.asarray(freq, dtype=np.float64))[::-1]
    span = values[0] - values[-1]
    values = (values - values[-1]) / span if span > 0 else np.ones_like(values)
    n = len(values)
    window = math.ceil(n / n_groups)
    starts = np.arange(0, n, window, dtype=np.int64)
    out = np.zeros(n_groups, dtype=np.float32)
    out[: starts.size] = np.add.reduceat(values, starts) / np.diff(np.r_[starts, n])
    return out


def mean_embeddings(model: Recommender, d_max: int) -> np.ndarray:
    """``(2, d_max)``: the mean raw user and item embedding of ``model``, zero-padded."""
    means = np.zeros((2, d_max), dtype=np.float32)
    with torch.no_grad():
        for row, raw in enumerate(model.raw_embeddings()):
            means[row, : raw.shape[1]] = raw.mean(dim=0).cpu().numpy()
    return means


def spread(users: np.ndarray, items: np.ndarray, scale: float) -> tuple[float, float]:
    """``(max - min) / scale`` of the user and the item sizes (0 for no entities)."""
    return tuple(float(np.ptp(side)) / scale if side.size else 0.0 for side in (users, items))


def observation_space(kind: str, n_groups: int, d_max: int) -> spaces.Box:
    """The Box of a layout (see the module docstring)."""
    if kind == "paper":
        return spaces.Box(-np.inf, np.inf, shape=(2 * n_groups + 2 * d_max + 4,), dtype=np.float32)
    return spaces.Box(-1.0, 1.0, shape=(2 * n_groups + 2 * d_max + 6,), dtype=np.float32)


@dataclass(frozen=True)
class SearchState:
    """What the observation reports besides the segment's frequencies.

    Attributes:
        trial: Trials done on the segment.
        last_reward: Reward of the last trial (0 after a reset or commit).
        last_ratio: Raw fitness ratio of the last trial (0.5 before any; kept across commits).
        user_mean: Mean raw user embedding (length ``d_max``, zero-padded) of the model the
            layout reports: the last trial model (paper) or the committed model (bounded).
        item_mean: The same for items.
        spread: ``(user, item)`` spread of the last sizes, already scaled for the layout.
        segment_fraction: Segment index over ``T - 1``.
        max_trials: The most trials a segment's search can run (the bounded layout's progress is
            ``trial / max_trials``).
    """

    trial: int
    last_reward: float
    last_ratio: float
    user_mean: np.ndarray
    item_mean: np.ndarray
    spread: tuple[float, float]
    segment_fraction: float
    max_trials: int


def observe(kind: str, segment: Segment, state: SearchState, n_groups: int) -> np.ndarray:
    """The observation of ``segment`` in layout ``kind`` (``"paper"`` or ``"bounded"``)."""
    user_share = segment.n_users / (segment.n_users + segment.n_items)
    if kind == "paper":
        parts = [
            paper_pooled_frequencies(segment.user_freq, n_groups),
            paper_pooled_frequencies(segment.item_freq, n_groups),
            [state.last_ratio, user_share],
            state.user_mean,
            state.item_mean,
            state.spread,
        ]
    else:
        parts = [
            pooled_frequencies(segment.user_freq, n_groups),
            pooled_frequencies(segment.item_freq, n_groups),
            [np.tanh(state.last_reward / REWARD_SCALE), user_share],
            np.tanh(state.user_mean),
            np.tanh(state.item_mean),
            state.spread,
            [state.trial / state.max_trials, state.segment_fraction],
        ]
    return np.concatenate(parts).astype(np.float32)
