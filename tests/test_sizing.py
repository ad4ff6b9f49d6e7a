"""Tests for scall_env.sizing: budgets, share distributions, integer sizes, split and ranking."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from _sizing_common import BUILTIN, FAST, OPEN_UNIT
from hypothesis import example, given
from hypothesis import strategies as st
from scipy import stats

from scall_env.sizing import (
    D_MAX,
    PARAMS_PER_MB,
    Budget,
    DistributionSizer,
    ShareDistribution,
    assign_by_frequency,
    available_distributions,
    budget_params,
    frequency_order,
    get_distribution,
    integer_sizes,
    register_distribution,
    split_budget,
)
from scall_env.sizing.distributions import _DISTRIBUTIONS

# ---------------------------------------------------------------- budget


def test_budget_c_and_b():
    assert budget_params("c", 32, 6040, 3260) == 32 * 9300
    assert budget_params("B", 10, 6040, 3260) == 10 * PARAMS_PER_MB == 2_500_000
    assert budget_params("c", 0.29, 60, 40) == 29  # exact decimal product, not 28.999...
    assert budget_params("B", 0.1, 0, 0) == 25_000
    assert budget_params("c", 2.5, 1, 0) == 2  # floored, never above
    assert budget_params("c", np.float32(8.0), np.int64(3), 1) == 32


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("C", 32, 1, 1), ValueError, r"budget_type must be one of \('c', 'B'\).*got 'C'"),
        (("mb", 1, 1, 1), ValueError, "budget_type must be one of"),
        (("c", 0, 1, 1), ValueError, r"finite number > 0, got 0"),
        (("B", -1.5, 1, 1), ValueError, r"finite number > 0, got -1.5"),
        (("c", math.nan, 1, 1), ValueError, "finite number > 0, got nan"),
        (("B", math.inf, 1, 1), ValueError, "finite number > 0, got inf"),
        (("c", "32", 1, 1), TypeError, "budget must be a real number, got str"),
        (("c", True, 1, 1), TypeError, "budget must be a real number, got bool"),
        (("c", 32, -1, 1), ValueError, "n_users must be >= 0, got -1"),
        (("c", 32, 1, 2.0), TypeError, "n_items must be an integer, got float"),
    ],
)
def test_budget_errors(args, error, match):
    with pytest.raises(error, match=match):
        budget_params(*args)


@pytest.mark.parametrize(
    ("kind", "value", "n_users", "n_items"),
    [
        ("c", 32, 6040, 3260),
        ("B", 10, 6040, 3260),
        ("c", 0.29, 60, 40),
        ("B", 0.1, 0, 0),
        ("c", 2.5, 1, 0),
        ("c", np.float32(8.0), np.int64(3), 1),
        ("B", 1e-7, 5, 5),
    ],
)
def test_budget_object_matches_budget_params(kind, value, n_users, n_items):
    budget = Budget(kind, value)
    assert budget.params(n_users, n_items) == budget_params(kind, value, n_users, n_items)
    assert type(budget.value) is float


@pytest.mark.parametrize(
    ("kind", "value", "error", "match"),
    [
        ("C", 32, ValueError, r"budget_type must be one of \('c', 'B'\) \('c': mean size per"),
        ("mb", 1, ValueError, r"'B': megabytes of float32\), got 'mb'"),
        ("c", 0, ValueError, r"budget must be a finite number > 0, got 0"),
        ("B", -1.5, ValueError, r"finite number > 0, got -1.5"),
        ("c", math.nan, ValueError, "finite number > 0, got nan"),
        ("B", math.inf, ValueError, "finite number > 0, got inf"),
        ("c", 10**400, ValueError, "finite number > 0, got 1000"),
        ("c", "32", TypeError, "budget must be a real number, got str"),
        ("c", True, TypeError, "budget must be a real number, got bool"),
        ("c", 1 + 0j, TypeError, "budget must be a real number, got complex"),
    ],
)
def test_budget_rejects_bad_kind_or_value_on_construction(kind, value, error, match):
    with pytest.raises(error, match=match):
        Budget(kind, value)


def test_budget_params_rejects_bad_counts():
    budget = Budget("c", 32)
    with pytest.raises(ValueError, match="n_users must be >= 0, got -1"):
        budget.params(-1, 1)
    with pytest.raises(TypeError, match="n_items must be an integer, got float"):
        budget.params(1, 2.0)
    with pytest.raises(TypeError, match="n_users must be an integer, got bool"):
        budget.params(True, 2)


def test_budget_str_and_value_semantics():
    assert str(Budget("c", 32)) == "c=32"
    assert str(Budget("B", 0.5)) == "B=0.5"
    assert str(Budget("c", 0.29)) == "c=0.29"
    assert str(Budget("c", np.float32(8.0))) == "c=8"
    assert Budget("c", 32) == Budget("c", 32.0)
    assert hash(Budget("c", 32)) == hash(Budget("c", 32.0))
    assert Budget("c", 32) != Budget("B", 32)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Budget("c", 32).value = 16.0  # type: ignore[misc]


# ---------------------------------------------------------------- distributions


def test_registry_lists_builtins():
    assert set(BUILTIN) <= set(available_distributions())
    for name in BUILTIN:
        assert get_distribution(name).name == name


def test_unknown_distribution_lists_known_names():
    with pytest.raises(ValueError, match=r"unknown distribution 'zipf'; known: .*powerlaw"):
        get_distribution("zipf")
    with pytest.raises(ValueError, match="unknown distribution"):
        DistributionSizer("zipf")


def test_register_custom_distribution() -> None:
    try:
        _register_and_use_a_custom_distribution()
    finally:  # the registry is process-wide: the test's entry goes when it ends
        _DISTRIBUTIONS.pop("test-exponential", None)
    assert "test-exponential" not in available_distributions()


def _register_and_use_a_custom_distribution() -> None:
    class Exponential(ShareDistribution):
        name = "test-exponential"
        param_at_0 = 0.2
        param_at_1 = 20.0

        def upper_quantiles(self, p, param):
            return stats.expon.isf(p) + param

    register_distribution("test-exponential", Exponential)
    shares = get_distribution("test-exponential").shares(0.5, 10)
    assert shares.sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="already registered; pass replace=True"):
        register_distribution("test-exponential", Exponential)
    register_distribution("test-exponential", Exponential, replace=True)
    with pytest.raises(TypeError, match="ShareDistribution subclass"):
        register_distribution("test-bad", dict)
    with pytest.raises(ValueError, match="non-empty string"):
        register_distribution("", Exponential)


@pytest.mark.parametrize("name", BUILTIN)
def test_param_mapping_is_affine(name):
    dist = get_distribution(name)
    assert dist.param(0.5) == pytest.approx((dist.param_at_0 + dist.param_at_1) / 2)
    low, high = sorted((dist.param_at_0, dist.param_at_1))
    assert low < dist.param(1e-9) < high
    assert low < dist.param(1 - 1e-9) < high


@pytest.mark.parametrize("name", BUILTIN)
@pytest.mark.parametrize("n", [1, 2, 17, 100_000])
def test_shares_are_normalised_descending(name, n):
    dist = get_distribution(name)
    for alpha in (1e-9, 0.01, 0.5, 0.99, 1 - 1e-9):
        shares = dist.shares(alpha, n)
        assert shares.shape == (n,)
        assert (shares > 0).all()
        assert (np.diff(shares) <= 0).all()
        assert shares.sum() == pytest.approx(1.0)
        np.testing.assert_array_equal(shares, dist.shares(alpha, n))  # noiseless


@pytest.mark.parametrize("name", BUILTIN)
def test_small_alpha_is_more_skewed(name):
    dist = get_distribution(name)
    tops = [dist.shares(alpha, 1000)[0] for alpha in (0.01, 0.25, 0.5, 0.75, 0.99)]
    assert all(a > b for a, b in zip(tops, tops[1:], strict=False))


def test_shares_of_no_entities():
    assert get_distribution("powerlaw").shares(0.5, 0).shape == (0,)


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, 1.5, math.nan, math.inf])
def test_shares_reject_alpha_outside_open_interval(alpha):
    with pytest.raises(ValueError, match=r"alpha must be finite and in the open interval \(0, 1\)"):
        get_distribution("powerlaw").shares(alpha, 10)


def test_shares_reject_bad_n():
    with pytest.raises(ValueError, match="n must be >= 0, got -3"):
        get_distribution("pareto").shares(0.5, -3)
    with pytest.raises(TypeError, match="n must be an integer"):
        get_distribution("pareto").shares(0.5, 3.0)


@pytest.mark.parametrize("alpha", [0.001, 0.05, 0.3, 0.7, 0.99])
def test_powerlaw_shares_match_mean_of_sorted_draws(alpha):
    """The authors average 100 sorted, normalised draws; the quantiles are their noiseless form."""
    n = 500
    dist = get_distribution("powerlaw")
    draws = stats.powerlaw.rvs(dist.param(alpha), size=(100, n), random_state=0)
    draws = -np.sort(-draws, axis=1)
    mean_shares = (draws / draws.sum(axis=1, keepdims=True)).mean(axis=0)
    shares = dist.shares(alpha, n)
    assert np.abs(shares - mean_shares).sum() < 0.02
    sizes, mc_sizes = integer_sizes(shares, 32 * n), integer_sizes(mean_shares, 32 * n)
    assert np.abs(sizes - mc_sizes).mean() < 0.5
    assert np.abs(sizes - mc_sizes).max() <= 4


# ---------------------------------------------------------------- integer sizes


@FAST
@given(
    name=st.sampled_from(BUILTIN),
    alpha=OPEN_UNIT,
    n=st.integers(1, 100_000),
    mean_size=st.floats(1.0, 300.0),
    min_size=st.integers(1, 8),
    d_max=st.sampled_from([8, 64, 256]),
)
@example(name="powerlaw", alpha=1e-9, n=100_000, mean_size=1.0, min_size=1, d_max=256)
@example(name="pareto", alpha=1e-9, n=100_000, mean_size=32.0, min_size=1, d_max=256)
@example(name="lognormal", alpha=0.5, n=100_000, mean_size=255.99, min_size=8, d_max=256)
@example(name="truncnorm", alpha=1 - 1e-9, n=100_000, mean_size=300.0, min_size=1, d_max=256)
def test_integer_sizes_properties(name, alpha, n, mean_size, min_size, d_max):
    min_size = min(min_size, d_max)
    total = max(int(mean_size * n), n * min_size)
    shares = get_distribution(name).shares(alpha, n)
    sizes = integer_sizes(shares, total, min_size=min_size, d_max=d_max)
    assert sizes.dtype == np.int64
    assert sizes.shape == (n,)
    assert sizes.min() >= min_size
    assert sizes.max() <= d_max
    assert (np.diff(sizes) <= 0).all()
    assert sizes.sum() <= total
    if not (sizes == d_max).all():
        assert total - sizes.sum() < d_max
    assert sizes.sum() == min(total, n * d_max)  # in fact no waste at all below capacity
    np.testing.assert_array_equal(
        sizes, integer_sizes(shares, total, min_size=min_size, d_max=d_max)
    )


def test_integer_sizes_examples():
    np.testing.assert_array_equal(integer_sizes([0.5, 0.3, 0.2], 10, d_max=256), [5, 3, 2])
    np.testing.assert_array_equal(integer_sizes([0.9, 0.1, 0.0], 12, d_max=8), [8, 3, 1])
    np.testing.assert_array_equal(integer_sizes([1, 1, 1], 10), [4, 3, 3])  # ties: earlier first
    np.testing.assert_array_equal(integer_sizes([1, 1e-200], 40, d_max=32), [32, 8])
    np.testing.assert_array_equal(integer_sizes([3, 2], 1000, d_max=256), [256, 256])
    np.testing.assert_array_equal(integer_sizes([3, 2], 2), [1, 1])
    assert integer_sizes([], 0).shape == (0,)


@pytest.mark.parametrize(
    ("shares", "total", "kwargs", "error", "match"),
    [
        ([0.5, 0.5], 1, {}, ValueError, r"budget of 1 parameters is below the minimum 2 \(2 ent"),
        ([0.5, 0.5], 7, {"min_size": 4}, ValueError, "below the minimum 8"),
        ([0.2, 0.8], 10, {}, ValueError, r"non-increasing \(largest first\)"),
        ([0.5, -0.1], 10, {}, ValueError, "finite and >= 0"),
        ([math.nan], 10, {}, ValueError, "finite and >= 0"),
        ([0.0, 0.0], 10, {}, ValueError, "must not all be zero"),
        ([[0.5]], 10, {}, ValueError, r"1-D, got shape \(1, 1\)"),
        ([0.5], 10, {"min_size": 9, "d_max": 8}, ValueError, "1 <= min_size <= d_max"),
        ([0.5], 10, {"min_size": 0}, ValueError, "1 <= min_size <= d_max"),
        ([0.5], 10.0, {}, TypeError, r"budget \(parameters\) must be an integer"),
        ([0.5], -1, {}, ValueError, r"budget \(parameters\) must be >= 0"),
    ],
)
def test_integer_sizes_errors(shares, total, kwargs, error, match):
    with pytest.raises(error, match=match):
        integer_sizes(shares, total, **kwargs)


# ---------------------------------------------------------------- split and ranking


def test_split_budget_examples_free_base():
    # free = 100 - 10 = 90; users 4 + round(0.5 * 90) = 49
    assert split_budget(100, 4, 6, 0.5, base="free") == (49, 51)
    # users capped at 2 * 8 = 16, the excess moves to the items
    assert split_budget(60, 2, 5, 0.9, d_max=8, base="free") == (16, 40)
    # items capped at 1 * 8; users take the rest up to their own cap
    assert split_budget(30, 3, 1, 0.01, d_max=8, base="free") == (22, 8)
    # beyond both capacities: each side full, the rest unused
    assert split_budget(1000, 2, 3, 0.3, d_max=8, base="free") == (16, 24)
    # a side with no entities takes nothing
    assert split_budget(50, 0, 5, 0.7, base="free") == (0, 50)


def test_split_budget_examples_budget_base():
    # the authors' reading: users get round(ratio * total)
    assert split_budget(100, 4, 6, 0.5) == (50, 50)
    assert split_budget(100, 4, 6, 0.3) == (30, 70)
    # users below their minimum (4 * 1) are raised to it, the items pay
    assert split_budget(100, 4, 6, 0.01) == (4, 96)
    # items below their minimum (6 * 2) keep it, the users pay
    assert split_budget(100, 4, 6, 0.99, min_size=2) == (88, 12)
    # capacities as with the free base
    assert split_budget(60, 2, 5, 0.9, d_max=8) == (16, 40)
    with pytest.raises(ValueError, match=r"base must be one of \('budget', 'free'\)"):
        split_budget(100, 4, 6, 0.5, base="total")


@FAST
@given(
    ratio=OPEN_UNIT,
    n_users=st.integers(0, 10_000),
    n_items=st.integers(0, 10_000),
    extra=st.integers(0, 5_000_000),
    min_size=st.integers(1, 4),
)
def test_split_budget_properties(ratio, n_users, n_items, extra, min_size):
    total = (n_users + n_items) * min_size + extra
    for base in ("budget", "free"):
        users, items = split_budget(total, n_users, n_items, ratio, min_size=min_size, base=base)
        assert users + items == min(total, (n_users + n_items) * D_MAX)
        assert n_users * min_size <= users <= n_users * D_MAX
        assert n_items * min_size <= items <= n_items * D_MAX


@pytest.mark.parametrize("ratio", [0.0, 1.0, math.nan, "half"])
def test_split_budget_rejects_bad_ratio(ratio):
    with pytest.raises(ValueError, match=r"ratio must be .*open interval \(0, 1\)"):
        split_budget(100, 2, 2, ratio)


def test_frequency_order_tie_break():
    # equal counts: the newer entity (larger id) first, as in the authors' code
    freq = np.array([3, 7, 3, 0, 7])
    np.testing.assert_array_equal(frequency_order(freq), [4, 1, 2, 0, 3])
    np.testing.assert_array_equal(
        assign_by_frequency([50, 40, 30, 20, 10], freq), [20, 40, 30, 10, 50]
    )


@pytest.mark.parametrize(
    ("freq", "match"),
    [
        (np.array([1.0, 2.0]), "freq must hold integers, got dtype float64"),
        (np.array([[1, 2]]), r"freq must be 1-D \(one count per id\), got shape \(1, 2\)"),
        (np.array([1, -2]), "freq must be >= 0, got minimum -2"),
    ],
)
def test_frequency_order_errors(freq, match):
    with pytest.raises(ValueError, match=match):
        frequency_order(freq)


def test_assign_by_frequency_length_mismatch():
    with pytest.raises(ValueError, match="got 2 sizes for 3 entities"):
        assign_by_frequency(np.array([2, 1]), np.array([1, 2, 3]))
