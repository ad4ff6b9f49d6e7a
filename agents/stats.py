"""Honest statistics of a comparison: robust means with confidence intervals and paired tests.

Seeds are few and test sets small, so a mean ± std over seeds says little. Following Agarwal et
al. (*Deep RL at the Edge of the Statistical Precipice*, NeurIPS 2021), every committed segment
``t >= 1`` of every seed is one sample, a (seed, segment) pair:

* the interquartile mean (IQM, ``scipy.stats.trim_mean(x, 0.25)``: the mean of the middle half)
  of Recall@20 and NDCG@20 per agent, robust to a few outlying segments;
* its 95% percentile-bootstrap confidence interval (``scipy.stats.bootstrap``, seeded, pairs
  resampled with replacement);
* a two-sided Wilcoxon signed-rank test (``scipy.stats.wilcoxon``) of the reference agent (SCALL's
  by default) against each other agent on the Recall@20 differences of the same (seed, segment),
  which pairs away the segment-to-segment spread that both agents share;
* the same p-values adjusted for the comparisons of a budget together (Holm's step-down method,
  :func:`holm`): several agents tested against one reference are a family of tests, and one of
  six tests at p < 0.05 is not rare by chance alone.

Everything is computed per budget; the tables are what :mod:`agents.report` writes.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

METRICS = ("recall@20", "ndcg@20")
"""Metrics summarised by an IQM and its interval."""
TESTED = "recall@20"
"""The metric of the paired test."""
CONFIDENCE = 0.95
"""Confidence level of the bootstrap intervals."""
N_RESAMPLES = 2000
"""Bootstrap resamples per interval."""
SEED = 0
"""Seed of the bootstrap (the same table every time)."""
PAIR = ["seed", "segment"]
"""What identifies a sample and pairs two agents' samples."""


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray | float:
    """Interquartile mean: the mean after cutting a quarter of the values off each end."""
    return stats.trim_mean(values, 0.25, axis=axis)


def iqm_interval(values: np.ndarray, seed: int = SEED) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval (:data:`CONFIDENCE`) of the IQM of ``values``.

    Returns:
        ``(low, high)``; ``(nan, nan)`` for fewer than 2 values.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return math.nan, math.nan
    result = stats.bootstrap(
        (values,),
        iqm,
        n_resamples=N_RESAMPLES,
        confidence_level=CONFIDENCE,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_test(reference: pd.Series, other: pd.Series) -> tuple[float, int, float, str]:
    """Wilcoxon signed-rank test of ``reference - other`` over the pairs both have.

    Args:
        reference: Values indexed by (seed, segment).
        other: The other agent's values, indexed the same way.

    Returns:
        ``(p_value, pairs, median difference, note)``; the p-value is NaN, with a note saying
        why, when fewer than 2 pairs exist or every difference is 0 (no test is defined then).
    """
    both = pd.concat([reference, other], axis=1, join="inner").dropna()
    differences = (both.iloc[:, 0] - both.iloc[:, 1]).to_numpy()
    pairs = len(differences)
    median = float(np.median(differences)) if pairs else math.nan
    if pairs < 2:
        return math.nan, pairs, median, f"{pairs} paired (seed, segment) values; a test needs 2"
    if not differences.any():
        return math.nan, pairs, median, "every paired difference is 0"
    try:
        p_value = float(stats.wilcoxon(differences).pvalue)
    except ValueError as exc:  # scipy refuses some degenerate samples
        return math.nan, pairs, median, str(exc)
    return p_value, pairs, median, ""


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of a family of p-values.

    The ``i``-th smallest of ``m`` p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``
    (1-based): rejecting where the adjusted value is below a level keeps the chance of any false
    rejection in the family at that level.

    Args:
        p_values: The family; NaN entries (no test) are left out of it and stay NaN.

    Returns:
        The adjusted p-values, in the order given.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, math.nan)
    tested = np.flatnonzero(~np.isnan(p))
    order = tested[np.argsort(p[tested], kind="stable")]
    scaled = (len(order) - np.arange(len(order))) * p[order]
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted


def statistics_table(segments: pd.DataFrame, reference_agent: str = "scall") -> pd.DataFrame:
    """IQM, bootstrap interval and paired test per (budget, agent) over segments ``t >= 1``.

    Args:
        segments: One row per committed segment and run, with ``budget``, ``agent``, ``seed``,
            ``segment`` and the :data:`METRICS` (:func:`agents.report.long_table`).
        reference_agent: The agent every other one is tested against, per budget; when a budget
            has no runs of it, no test is made there.

    Returns:
        One row per (budget, agent), in the order of ``segments``: ``samples`` (its (seed,
        segment) pairs), ``<metric>_iqm``/``_ci_low``/``_ci_high`` per metric, and for the
        test ``pairs`` (pairs shared with the reference), ``recall@20_diff_median`` (reference
        minus agent), ``p_value``, ``p_holm`` (:func:`holm` over the budget's p-values) and
        ``note`` (why there is no p-value, or ``"reference"``).
    """
    later = segments[segments["segment"] >= 1]
    rows = []
    for (budget, agent), runs in later.groupby(["budget", "agent"], sort=False):
        row = {"budget": budget, "agent": agent, "samples": len(runs)}
        for metric in METRICS:
            values = runs[metric].to_numpy(dtype=float)
            row[f"{metric}_iqm"] = float(iqm(values)) if len(values) else math.nan
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = iqm_interval(values)
        reference = later[(later["budget"] == budget) & (later["agent"] == reference_agent)]
        if agent == reference_agent:
            test = (math.nan, len(runs), math.nan, "reference")
        elif reference.empty:
            test = (math.nan, 0, math.nan, f"no {reference_agent} runs to compare with")
        else:
            test = paired_test(reference.set_index(PAIR)[TESTED], runs.set_index(PAIR)[TESTED])
        row["p_value"], row["pairs"], row[f"{TESTED}_diff_median"], row["note"] = test
        rows.append(row)
    table = pd.DataFrame(rows)
    if not table.empty:
        table["p_holm"] = table.groupby("budget", sort=False)["p_value"].transform(holm)
    return table


def statistics_markdown(table: pd.DataFrame, reference_agent: str = "scall") -> str:
    """A Markdown section (``## Statistics``) presenting a :func:`statistics_table`."""
    lines = [
        "## Statistics",
        "",
        "Interquartile mean (IQM) over the (seed, segment) pairs of segments >= 1 with a "
        f"{CONFIDENCE:.0%} percentile-bootstrap interval ({N_RESAMPLES} resamples); p: two-sided "
        f"Wilcoxon signed-rank test of {reference_agent} against the agent on the {TESTED} "
        "differences of the same seed and segment (median difference: "
        f"{reference_agent} minus the agent); p (Holm): the p-values of a budget adjusted "
        "together for its comparisons (Holm's step-down method).",
        "",
        "| budget | agent | samples | Recall@20 IQM [95% CI] | NDCG@20 IQM [95% CI] | "
        "median difference | p | p (Holm) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        cells = [
            f"{row[f'{m}_iqm']:.4f} [{row[f'{m}_ci_low']:.4f}, {row[f'{m}_ci_high']:.4f}]"
            for m in METRICS
        ]
        median = row[f"{TESTED}_diff_median"]
        median = "–" if math.isnan(median) else f"{median:+.4f}"
        if math.isnan(row["p_value"]):
            p_value, p_holm = f"({row['note']})", "–"
        else:
            p_value, p_holm = f"{row['p_value']:.3g}", f"{row['p_holm']:.3g}"
        lines.append(
            f"| {row['budget']} | {row['agent']} | {row['samples']} | {cells[0]} | {cells[1]} | "
            f"{median} | {p_value} | {p_holm} |"
        )
    return "\n".join(lines) + "\n"
