"""Tests for scall_env.sizing: size decisions and the sizers."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from _sizing_common import BUILTIN, FAST, OPEN_UNIT, check_assignment, random_freq
from hypothesis import example, given
from hypothesis import strategies as st

from scall_env.sizing import (
    ACTION_EPS,
    D_MAX,
    DistributionSizer,
    FrequencySizer,
    SizeAssignment,
    SizeDecision,
    Sizer,
    SizingRequest,
    UniformSizer,
    budget_params,
    frequency_order,
    get_distribution,
)

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


@pytest.mark.parametrize(
    ("ratio_base", "user_params"),
    [("budget", round(0.5 * 32 * 400)), ("free", 100 + round(0.5 * 31 * 400))],  # 6400, 6300
)
def test_distribution_sizer_reports_split(ratio_base: str, user_params: int) -> None:
    user_freq, item_freq = np.arange(100), np.arange(300)
    sizer = DistributionSizer(ratio_base=ratio_base)
    result = sizer.sizes((0.5, 0.5, 0.5), user_freq, item_freq, 32 * 400)
    assert result.user_params == user_params
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


class _Greedy(Sizer):
    """A buggy sizer: every entity gets ``width`` values, whatever the budget."""

    def __init__(self, width: int, drop_item: bool = False) -> None:
        self.width, self.drop_item = width, drop_item

    def assign(self, decision: object, request: SizingRequest) -> SizeAssignment:
        n_items = request.item_freq.size - self.drop_item
        return SizeAssignment.build(
            np.full(request.user_freq.size, self.width),
            np.full(n_items, self.width),
            request.budget_params,
        )


@pytest.mark.parametrize(
    ("sizer", "message"),
    [
        (_Greedy(8), "_Greedy uses 80 parameters, over the budget of 40"),
        (_Greedy(9), r"_Greedy gave user sizes in \[9, 9\], outside \[min_size=1, d_max=8\]"),
        (_Greedy(1, drop_item=True), r"_Greedy gave \(4,\) item sizes for 5 items"),
    ],
)
def test_a_sizer_that_breaks_the_bounds_or_the_budget_is_refused(
    sizer: Sizer, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sizer.sizes(None, np.arange(5), np.arange(5), 40, d_max=8)
