"""Budgeted integer embedding sizes: from an action (or a baseline rule) to one size per entity.

The parameter budget is stated as a mean size ``c`` or in megabytes ``B`` (:class:`Budget`,
:func:`budget_params`). SCALL's decision ``(ratio, alpha_user, alpha_item)``
(:class:`SizeDecision`, mapped from the action box by :meth:`SizeDecision.from_action`) splits
that budget between users and items (:func:`split_budget`), turns each alpha into the shape of a
size distribution (:class:`ShareDistribution`, pluggable through :func:`register_distribution`),
and hands the resulting sizes out by frequency rank. :func:`integer_sizes` makes sizes exact
integers in ``[min_size, d_max]`` that never exceed the budget and waste less than ``d_max``
parameters. A :class:`Sizer` maps a decision to sizes; :class:`DistributionSizer` is SCALL's, and
:class:`UniformSizer` and :class:`FrequencySizer` are baselines.

Modules: :mod:`.budget` (budgets and the user/item split), :mod:`.decision` (the decision and
the action box), :mod:`.distributions` (share distributions and their registry),
:mod:`.integer` (integer sizes and frequency ranking), :mod:`.sizers` (the sizers).
"""

from scall_env.sizing.budget import (
    BUDGET_TYPES,
    D_MAX,
    MIN_SIZE,
    PARAMS_PER_MB,
    RATIO_BASES,
    Budget,
    budget_params,
    split_budget,
)
from scall_env.sizing.decision import ACTION_EPS, SizeDecision
from scall_env.sizing.distributions import (
    LogNormal,
    Pareto,
    PowerLaw,
    ShareDistribution,
    TruncNormal,
    available_distributions,
    get_distribution,
    register_distribution,
)
from scall_env.sizing.integer import assign_by_frequency, frequency_order, integer_sizes
from scall_env.sizing.sizers import (
    DistributionSizer,
    FrequencySizer,
    PooledSizer,
    SizeAssignment,
    Sizer,
    SizingRequest,
    UniformSizer,
)

__all__ = [
    "ACTION_EPS",
    "BUDGET_TYPES",
    "D_MAX",
    "MIN_SIZE",
    "PARAMS_PER_MB",
    "Budget",
    "DistributionSizer",
    "FrequencySizer",
    "LogNormal",
    "Pareto",
    "PowerLaw",
    "ShareDistribution",
    "SizeAssignment",
    "SizeDecision",
    "PooledSizer",
    "Sizer",
    "SizingRequest",
    "TruncNormal",
    "UniformSizer",
    "assign_by_frequency",
    "available_distributions",
    "budget_params",
    "frequency_order",
    "get_distribution",
    "integer_sizes",
    "register_distribution",
    "RATIO_BASES",
    "split_budget",
]
