"""Shared strategies and invariants of the sizing tests."""

from __future__ import annotations

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st

from scall_env.sizing import SizeAssignment, frequency_order

BUILTIN = ("lognormal", "pareto", "powerlaw", "truncnorm")
FAST = settings(max_examples=100, deadline=None, derandomize=True)
OPEN_UNIT = st.floats(min_value=1e-9, max_value=1 - 1e-9)


def random_freq(rng: np.random.Generator, n: int) -> np.ndarray:
    """Heavy-tailed counts with many ties and zeros, like a stream segment."""
    return (rng.zipf(1.6, size=n) - 1).clip(0, 10**6).astype(np.int64)


def check_assignment(result: SizeAssignment, user_freq, item_freq, budget: int, d_max: int):
    """Invariants every sizer must keep."""
    for sizes, freq in ((result.user_sizes, user_freq), (result.item_sizes, item_freq)):
        assert sizes.dtype == np.int64
        assert sizes.shape == (len(freq),)
        assert not sizes.flags.writeable
        if sizes.size:
            assert sizes.min() >= 1
            assert sizes.max() <= d_max
            ranked = sizes[frequency_order(freq)]
            assert (np.diff(ranked) <= 0).all(), "sizes must not grow down the frequency ranking"
    assert result.budget_params == budget
    assert result.user_params == int(result.user_sizes.sum())
    assert result.item_params == int(result.item_sizes.sum())
    assert result.params_used <= budget
