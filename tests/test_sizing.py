"""Tests for scall_env.sizing: budgets, share distributions, integer sizes and sizers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from scall_env.sizing import (
    ACTION_EPS,
    D_MAX,
    PARAMS_PER_MB,
    Budget,
    DistributionSizer,
    FrequencySizer,
    ShareDistribution,
    SizeAssignment,
    SizeDecision,
    UniformSizer,
    assign_by_frequency,
    available_distributions,
    budget_params,
    frequency_order,
    get_distribution,
    integer_sizes,
    register_distribution,
    split_budget,
)

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


def test_register_custom_distribution():
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


# ---------------------------------------------------------------- decisions


def legacy_mapping(action) -> np.ndarray:
    """The env's action mapping before SizeDecision, kept here to pin the arithmetic bit for bit."""
    array = np.asarray(action, dtype=np.float64)
    return 1e-6 + (1.0 - 2.0 * 1e-6) * (array + 1.0) / 2.0


def test_action_eps():
    assert ACTION_EPS == SizeDecision.ACTION_EPS == 1e-6


def test_from_action_exact_values():
    decision = SizeDecision.from_action(np.float32([-1.0, 0.0, 1.0]))
    assert decision == SizeDecision(1e-06, 0.5, 0.9999990000000001)
    assert decision.ratio == ACTION_EPS
    assert decision.alpha_item == pytest.approx(1 - ACTION_EPS, abs=1e-15)
    assert SizeDecision.from_action((-0.5, 0.5, 0)) == SizeDecision(0.2500005, 0.7499995, 0.5)
    assert all(type(value) is float for value in dataclasses.astuple(decision))


@FAST
@given(action=st.lists(st.floats(-1, 1, width=32), min_size=3, max_size=3))
@example(action=[-1.0, 0.0, 1.0])
@example(action=[1e-30, -1e-30, 2**-20])
def test_from_action_is_bit_identical_to_legacy_mapping(action):
    array = np.float32(action)
    decision = SizeDecision.from_action(array)
    assert decision.as_array().dtype == np.float64
    assert decision.as_array().tobytes() == legacy_mapping(array).tobytes()
    assert SizeDecision.from_action(array.tolist()) == decision


@FAST
@given(action=st.lists(st.floats(-1, 1, width=32), min_size=3, max_size=3))
@example(action=[-1.0, 0.0, 1.0])
@example(action=[-0.999, 1e-30, 0.999])
def test_to_action_inverts_from_action(action):
    array = np.float32(action)
    back = SizeDecision.from_action(array).to_action()
    assert back.dtype == np.float32 and back.shape == (3,)
    # Exact wherever float64 rounding (~1e-16) is below half a float32 step; near 0 it is not.
    exact = np.abs(array) >= 2.0**-20
    np.testing.assert_array_equal(back[exact], array[exact])
    assert np.abs(back - array).max() <= 1e-12


@FAST
@given(values=st.tuples(OPEN_UNIT, OPEN_UNIT, OPEN_UNIT))
def test_decision_round_trips_through_action(values):
    decision = SizeDecision(*values)
    action = decision.to_action()
    assert (np.abs(action) <= 1.0).all()
    again = SizeDecision.from_action(action).as_array()
    np.testing.assert_allclose(again, np.clip(values, ACTION_EPS, 1 - ACTION_EPS), atol=1e-7)


def test_to_action_clips_decisions_no_action_reaches():
    action = SizeDecision(1e-9, 0.5, 1 - 1e-9).to_action()
    np.testing.assert_array_equal(action, np.float32([-1.0, 0.0, 1.0]))


@pytest.mark.parametrize(
    ("action", "match"),
    [
        ([0.5, 0.5], r"action must have shape \(3,\), got \(2,\)"),
        ([[0.5, 0.5, 0.5]], r"action must have shape \(3,\), got \(1, 3\)"),
        (0.5, r"action must have shape \(3,\), got \(\)"),
        ([0.0, math.nan, 0.0], r"action must be finite, got \[0.0, nan, 0.0\]"),
        ([0.0, 0.0, -math.inf], "action must be finite, got"),
        ([1.5, 0.0, 0.0], r"action values must lie in \[-1, 1\], got \[1.5, 0.0, 0.0\]"),
        (np.float32([0.0, -1.0001, 0.0]), r"action values must lie in \[-1, 1\]"),
        ([0.5 + 1j, 0.0, 0.0], r"action must be 3 real numbers, got \[\(0.5\+1j\), 0.0, 0.0\]"),
        (np.array([0.5 + 0j, 0.0, 0.0]), "action must be 3 real numbers"),  # imag 0: still refused
        ([np.complex128(0.5), 0.0, 0.0], "action must be 3 real numbers"),
        ("abc", "action must be 3 real numbers, got 'abc'"),
        (["0.5", "0.5", "0.5"], "action must be 3 real numbers"),
        ({"ratio": 0.5}, "action must be 3 real numbers"),
        ([True, False, True], "action must be 3 real numbers"),
        ([None, 0.0, 0.0], "action must be 3 real numbers"),
        ([[0.1, 0.2], [0.3]], "action must be 3 real numbers"),
        (None, "action must be 3 real numbers, got None"),
    ],
)
def test_from_action_rejects_bad_action(action, match):
    with pytest.raises(ValueError, match=match):
        SizeDecision.from_action(action)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ((0.0, 0.5, 0.5), r"ratio must be finite and in the open interval \(0, 1\), got 0.0"),
        ((0.5, 1.0, 0.5), r"alpha_user must be finite and in the open interval \(0, 1\)"),
        ((0.5, 0.5, math.nan), "alpha_item must be finite .*got nan"),
        ((0.5, 0.5, -0.1), "alpha_item must be finite"),
        ((True, 0.5, 0.5), r"ratio must be a real number in the open interval \(0, 1\), got True"),
        ((0.5, "0.5", 0.5), "alpha_user must be a real number in the open interval"),
        ((0.5, 0.5, 0.5j), "alpha_item must be a real number"),
    ],
)
def test_decision_rejects_bad_fields(values, match):
    with pytest.raises(ValueError, match=match):
        SizeDecision(*values)


def test_decision_is_a_frozen_value():
    decision = SizeDecision(np.float32(0.25), 0.5, np.float64(0.75))
    assert decision == SizeDecision(0.25, 0.5, 0.75)
    assert all(type(value) is float for value in dataclasses.astuple(decision))
    np.testing.assert_array_equal(decision.as_array(), [0.25, 0.5, 0.75])
    assert decision.as_array().dtype == np.float64
    with pytest.raises(dataclasses.FrozenInstanceError):
        decision.ratio = 0.5  # type: ignore[misc]


def test_coerce_passes_instances_through_and_validates_arrays():
    decision = SizeDecision(0.3, 0.4, 0.6)
    assert SizeDecision.coerce(decision) is decision
    for form in ([0.3, 0.4, 0.6], (0.3, 0.4, 0.6), np.array([0.3, 0.4, 0.6])):
        assert SizeDecision.coerce(form) == decision
    as_float32 = SizeDecision.coerce(np.float32([0.3, 0.4, 0.6]))
    assert as_float32.ratio == float(np.float32(0.3))


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (None, r"the action \(ratio, alpha_user, alpha_item\) is required, got None"),
        ([0.5, 0.5], r"the action must have shape \(3,\) .*got \(2,\)"),
        ([0.5 + 1j, 0.5, 0.5], "the action must be 3 real numbers"),
        (np.array([0.5, 0.5, 0.5], dtype=complex), "the action must be 3 real numbers"),
        (["0.5", "0.5", "0.5"], "the action must be 3 real numbers"),
        ([0.5, 0.5, 1.0], r"alpha_item must be finite and in the open interval \(0, 1\)"),
    ],
)
def test_coerce_rejects_bad_decision(decision, match):
    with pytest.raises(ValueError, match=match):
        SizeDecision.coerce(decision)


# ---------------------------------------------------------------- sizers


@FAST
@given(
    name=st.sampled_from(BUILTIN),
    action=st.tuples(OPEN_UNIT, OPEN_UNIT, OPEN_UNIT),
    n_users=st.integers(1, 60_000),
    n_items=st.integers(1, 40_000),
    mean_size=st.floats(1.0, 300.0),
    seed=st.integers(0, 2**32 - 1),
)
@example(
    name="powerlaw",
    action=(1e-9, 1e-9, 1 - 1e-9),
    n_users=60_000,
    n_items=40_000,
    mean_size=32.0,
    seed=0,
)
@example(
    name="pareto",
    action=(1 - 1e-9, 0.5, 1e-9),
    n_users=1,
    n_items=40_000,
    mean_size=255.5,
    seed=1,
)
def test_distribution_sizer_properties(name, action, n_users, n_items, mean_size, seed):
    rng = np.random.default_rng(seed)
    user_freq, item_freq = random_freq(rng, n_users), random_freq(rng, n_items)
    budget = max(int(mean_size * (n_users + n_items)), n_users + n_items)
    sizer = DistributionSizer(name)
    result = sizer.sizes(np.array(action), user_freq, item_freq, budget)
    check_assignment(result, user_freq, item_freq, budget, D_MAX)
    capacity = (n_users + n_items) * D_MAX
    assert result.params_used == min(budget, capacity)
    assert budget - result.params_used < D_MAX or result.params_used == capacity
    again = sizer.sizes(list(action), user_freq.copy(), item_freq.copy(), budget)
    np.testing.assert_array_equal(result.user_sizes, again.user_sizes)
    np.testing.assert_array_equal(result.item_sizes, again.item_sizes)


def test_distribution_sizer_reports_split():
    user_freq, item_freq = np.arange(100), np.arange(300)
    result = DistributionSizer().sizes((0.25, 0.5, 0.5), user_freq, item_freq, 32 * 400)
    free = 31 * 400
    assert result.user_params == 100 + round(0.25 * free)
    assert result.user_share == pytest.approx(result.user_params / (32 * 400))
    assert result.params_used == result.budget_params == 12_800
    assert result.user_sizes[99] == result.user_sizes.max()  # most frequent user gets the most
    assert result.item_sizes[0] == result.item_sizes.min()


def test_distribution_sizer_accepts_instance_and_custom_bounds():
    sizer = DistributionSizer(get_distribution("lognormal"))
    freq = np.array([5, 1, 9, 0])
    result = sizer.sizes(np.float32([0.4, 0.2, 0.8]), freq, freq, 40, d_max=8, min_size=2)
    check_assignment(result, freq, freq, 40, 8)
    assert min(result.user_sizes.min(), result.item_sizes.min()) >= 2


@pytest.mark.parametrize(
    ("action", "match"),
    [
        (None, r"action \(ratio, alpha_user, alpha_item\) is required"),
        ([0.5, 0.5], r"shape \(3,\) .*got \(2,\)"),
        ([[0.5, 0.5, 0.5]], r"shape \(3,\) .*got \(1, 3\)"),
        (["a", "b", "c"], "the action must be 3 real numbers"),
        (np.array([0.5 + 0.5j, 0.5, 0.5]), "the action must be 3 real numbers"),
        ([0.0, 0.5, 0.5], r"ratio must be finite and in the open interval \(0, 1\), got 0.0"),
        ([0.5, 1.0, 0.5], r"alpha_user must be finite and in the open interval \(0, 1\)"),
        ([0.5, 0.5, math.nan], r"alpha_item must be finite .*got nan"),
        ([0.5, -math.inf, 0.5], "alpha_user must be finite"),
        ([1.2, 0.5, 0.5], "ratio must be finite and in the open interval"),
    ],
)
def test_distribution_sizer_rejects_bad_action(action, match):
    freq = np.array([1, 2, 3])
    with pytest.raises(ValueError, match=match):
        DistributionSizer().sizes(action, freq, freq, 100)


@FAST
@given(
    name=st.sampled_from(BUILTIN),
    action=st.lists(st.floats(-1, 1, width=32), min_size=3, max_size=3),
    n_users=st.integers(0, 5_000),
    n_items=st.integers(0, 5_000),
    mean_size=st.floats(1.0, 300.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_distribution_sizer_same_sizes_for_decision_and_array(
    name, action, n_users, n_items, mean_size, seed
):
    rng = np.random.default_rng(seed)
    user_freq, item_freq = random_freq(rng, n_users), random_freq(rng, n_items)
    budget = max(int(mean_size * (n_users + n_items)), n_users + n_items)
    decision = SizeDecision.from_action(np.float32(action))
    sizer = DistributionSizer(name)
    expected = sizer.sizes(decision, user_freq, item_freq, budget)
    for form in (decision.as_array(), decision.as_array().tolist(), legacy_mapping(action)):
        result = sizer.sizes(form, user_freq, item_freq, budget)
        np.testing.assert_array_equal(result.user_sizes, expected.user_sizes)
        np.testing.assert_array_equal(result.item_sizes, expected.item_sizes)
        assert result.user_params == expected.user_params


def test_baseline_sizers_accept_and_ignore_a_decision():
    freq = np.array([4, 0, 9])
    decision = SizeDecision(0.1, 0.2, 0.3)
    for sizer in (UniformSizer(), FrequencySizer(1.0)):
        with_decision = sizer.sizes(decision, freq, freq, 60)
        without = sizer.sizes(None, freq, freq, 60)
        np.testing.assert_array_equal(with_decision.user_sizes, without.user_sizes)
        np.testing.assert_array_equal(with_decision.item_sizes, without.item_sizes)


@pytest.mark.parametrize("sizer", [DistributionSizer(), UniformSizer(), FrequencySizer(0.5)])
def test_sizers_reject_infeasible_budget_and_bad_freq(sizer):
    freq = np.array([1, 2, 3])
    action = (0.5, 0.5, 0.5)
    with pytest.raises(ValueError, match=r"budget of 5 parameters is below the minimum 6"):
        sizer.sizes(action, freq, freq, 5)
    with pytest.raises(ValueError, match="user_freq must hold integers"):
        sizer.sizes(action, freq.astype(float), freq, 100)
    with pytest.raises(ValueError, match="item_freq must be >= 0"):
        sizer.sizes(action, freq, -freq, 100)
    with pytest.raises(ValueError, match="1 <= min_size <= d_max"):
        sizer.sizes(action, freq, freq, 100, min_size=300)


@FAST
@given(
    n_users=st.integers(1, 60_000),
    n_items=st.integers(1, 40_000),
    mean_size=st.floats(1.0, 300.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_uniform_sizer_properties(n_users, n_items, mean_size, seed):
    rng = np.random.default_rng(seed)
    user_freq, item_freq = random_freq(rng, n_users), random_freq(rng, n_items)
    n = n_users + n_items
    budget = max(int(mean_size * n), n)
    result = UniformSizer().sizes(None, user_freq, item_freq, budget)
    check_assignment(result, user_freq, item_freq, budget, D_MAX)
    expected = min(budget // n, D_MAX)
    assert (result.user_sizes == expected).all()
    assert (result.item_sizes == expected).all()


def test_uniform_sizer_is_c():
    freq = np.zeros(10, dtype=np.int64)
    result = UniformSizer().sizes(None, freq, freq[:5], budget_params("c", 32, 10, 5))
    assert (result.user_sizes == 32).all()
    assert result.params_used == result.budget_params


@FAST
@given(
    beta=st.floats(0.0, 3.0),
    n_users=st.integers(1, 60_000),
    n_items=st.integers(1, 40_000),
    mean_size=st.floats(1.0, 300.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_frequency_sizer_properties(beta, n_users, n_items, mean_size, seed):
    rng = np.random.default_rng(seed)
    user_freq, item_freq = random_freq(rng, n_users), random_freq(rng, n_items)
    n = n_users + n_items
    budget = max(int(mean_size * n), n)
    result = FrequencySizer(beta).sizes(None, user_freq, item_freq, budget)
    check_assignment(result, user_freq, item_freq, budget, D_MAX)
    assert result.params_used == min(budget, n * D_MAX)
    both = np.concatenate([user_freq, item_freq])
    joint = np.concatenate([result.user_sizes, result.item_sizes])
    assert (np.diff(joint[frequency_order(both)]) <= 0).all()


def test_frequency_sizer_examples():
    user_freq, item_freq = np.array([0, 3, 8]), np.array([8, 1])
    result = FrequencySizer(1.0).sizes(None, user_freq, item_freq, 23)
    # shares (f + 1): 1, 4, 9 | 9, 2 -> sizes 1, 4, 9 | 9, 2 exactly (sum 25 > 23 is trimmed)
    assert result.params_used == 23
    assert list(result.user_sizes) == [1, 4, 8] and list(result.item_sizes) == [8, 2]
    flat = FrequencySizer(0.0).sizes(None, user_freq, item_freq, 23)
    assert list(flat.user_sizes) == [4, 5, 5] and list(flat.item_sizes) == [5, 4]


@pytest.mark.parametrize(
    ("beta", "error", "match"),
    [
        (-0.5, ValueError, "beta must be a finite number >= 0, got -0.5"),
        (math.inf, ValueError, "beta must be a finite number >= 0"),
        ("1", TypeError, "beta must be a real number"),
    ],
)
def test_frequency_sizer_rejects_bad_beta(beta, error, match):
    with pytest.raises(error, match=match):
        FrequencySizer(beta)


def test_assignment_is_frozen():
    freq = np.array([1, 2])
    result = UniformSizer().sizes(None, freq, freq, 8)
    with pytest.raises(ValueError, match="read-only"):
        result.user_sizes[0] = 5
    with pytest.raises(AttributeError):
        result.budget_params = 3  # type: ignore[misc]
