"""Tables and plots of a comparison: runs (``RunResult``) -> data frames, markdown, PNG figures.

Used by ``scall-compare`` (:mod:`scall_cli.compare`) and usable on runs read back with
:func:`agents.harness.load_run`. The figures are built as :class:`matplotlib.figure.Figure`
objects and written with ``savefig``: no pyplot, so no GUI backend is chosen and no global
matplotlib state changes.

Typical use::

    segments = long_table(results)          # results: [(budget, RunResult), ...]
    summary = summary_table(segments)
    text = markdown(summary, segments, config)
    plot_recall(segments, out / "recall_per_segment.png")
    plot_sizes(results, out / "size_vs_rank.png")
    plot_params(segments, out / "params_vs_budget.png")
    text += write_statistics(segments, out)  # statistics.csv, intervals.png (agents.stats)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from agents.stats import METRICS as STAT_METRICS
from agents.stats import statistics_markdown, statistics_table
from scall_env.cache import atomic_path, write_text_atomic
from scall_env.sizing import frequency_order

if TYPE_CHECKING:  # annotations only: the tables and plots need no harness (torch, SB3)
    from agents.harness import RunResult

#: The budget label of runs that use the env's own budget (a comparison without ``budgets``).
DEFAULT_BUDGET = "default"
#: Resolution of the PNG figures.
DPI = 120


def _save_figure(fig: Figure, path: Path) -> None:
    """Write ``fig`` as PNG atomically (a stopped comparison leaves no half-written plot)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=DPI, format="png")


def _write_csv(table: pd.DataFrame, path: Path) -> None:
    """Write ``table`` as CSV (no index) atomically."""
    write_text_atomic(path, table.to_csv(index=False))


def long_table(results: Sequence[tuple[Any, RunResult]]) -> pd.DataFrame:
    """One row per committed segment of every run.

    Args:
        results: ``(budget, result)`` pairs; ``budget`` is ``None`` for the env's own budget.

    Returns:
        Columns ``budget`` (``"default"`` for ``None``), ``agent``, ``seed``, the segment's
        metrics (``segment``, ``recall@20``, ``ndcg@20``, ``params_used``, ``budget_params``, ...;
        without ``action`` and ``episode``) and the run's ``wall_time_s``.
    """
    rows = []
    for budget, result in results:
        for segment in result.segments:
            rows.append(
                {
                    "budget": budget if budget is not None else DEFAULT_BUDGET,
                    "agent": result.algo,
                    "seed": result.seed,
                    **{k: v for k, v in segment.items() if k not in ("action", "episode")},
                    "wall_time_s": result.wall_time_s,
                }
            )
    return pd.DataFrame(rows)


def summary_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (budget, agent): per-segment and averaged metrics.

    Args:
        segments: The :func:`long_table`.

    Returns:
        One row per (budget, agent): ``avg_recall@20_mean``/``_std`` and ``avg_ndcg@20_mean``/
        ``_std`` (each run's average over segments >= 1, then mean and std over seeds),
        ``params_over_budget_mean``/``_max`` (parameters used / budget over all segments) and
        ``runs``, ``wall_time_s_mean``/``_std`` (a run's wall time) and ``trials_per_run_mean``,
        ``recall@20_seg<k>_mean``/``_std`` per segment. With one seed the std columns are NaN.
    """
    later = segments[segments["segment"] >= 1]
    per_run = later.groupby(["budget", "agent", "seed"])[["recall@20", "ndcg@20"]].mean()
    averages = per_run.groupby(["budget", "agent"]).agg(["mean", "std"])
    averages.columns = [f"avg_{metric}_{stat}" for metric, stat in averages.columns]
    runs = segments.groupby(["budget", "agent", "seed"]).agg(
        wall_time_s=("wall_time_s", "first"), trials=("trials", "sum")
    )
    cost = runs.groupby(["budget", "agent"]).agg(
        runs=("trials", "size"),
        wall_time_s_mean=("wall_time_s", "mean"),
        wall_time_s_std=("wall_time_s", "std"),
        trials_per_run_mean=("trials", "mean"),
    )
    usage = segments.assign(usage=segments["params_used"] / segments["budget_params"])
    usage = usage.groupby(["budget", "agent"])["usage"].agg(["mean", "max"])
    usage.columns = ["params_over_budget_mean", "params_over_budget_max"]
    per_segment = segments.pivot_table(
        index=["budget", "agent"],
        columns="segment",
        values="recall@20",
        aggfunc=["mean", "std"],
        dropna=False,  # keep the std columns with a single seed (all NaN)
    )
    per_segment.columns = [f"recall@20_seg{seg}_{stat}" for stat, seg in per_segment.columns]
    return averages.join(cost).join(usage).join(per_segment).reset_index()


def mean_pm_std(mean: float, std: float, digits: int = 4) -> str:
    """``"0.1234 ± 0.0056"``, or just the mean when the std is NaN (a single seed)."""
    return f"{mean:.{digits}f}" if np.isnan(std) else f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown(summary: pd.DataFrame, segments: pd.DataFrame, config: dict[str, Any]) -> str:
    """Markdown report: averages, per-segment Recall@20 and NDCG@20, parameters vs budget.

    Args:
        summary: The :func:`summary_table`.
        segments: The :func:`long_table`.
        config: The comparison config; uses ``env``, ``agents``, ``seeds`` and ``env_kwargs``.

    Returns:
        The report text, ending with a newline.
    """
    seeds = config["seeds"]
    lines = [
        f"# {config['env']}: {', '.join(config['agents'])}",
        "",
        f"Seeds {seeds}; mean ± std over seeds (one seed: the value); averages over segments "
        ">= 1 (as in the paper).",
        f"Environment arguments: `{json.dumps(config.get('env_kwargs') or {})}`.",
        "",
        "| budget | agent | runs | Recall@20 | NDCG@20 | params / budget (max) "
        "| wall time of a run (s) | trials of a run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for _, row in summary.iterrows():
        lines.append(
            f"| {row['budget']} | {row['agent']} | {row['runs']} | "
            f"{mean_pm_std(row['avg_recall@20_mean'], row['avg_recall@20_std'])} | "
            f"{mean_pm_std(row['avg_ndcg@20_mean'], row['avg_ndcg@20_std'])} | "
            f"{row['params_over_budget_max']:.4f} | "
            f"{mean_pm_std(row['wall_time_s_mean'], row['wall_time_s_std'], digits=0)} | "
            f"{row['trials_per_run_mean']:.0f} |"
        )
    for metric in ("recall@20", "ndcg@20"):
        # one row per (budget, agent) pair that ran; a segment a pair lacks reads as nan
        stats = segments.groupby(["budget", "agent", "segment"])[metric].agg(["mean", "std"])
        table = stats.unstack("segment")
        segment_ids = sorted(segments["segment"].unique())
        lines += ["", f"{metric} per segment:", ""]
        lines.append("| budget | agent | " + " | ".join(f"D{s}" for s in segment_ids) + " |")
        lines.append("|---|---|" + "---|" * len(segment_ids))
        for (budget, agent), row in table.iterrows():
            cells = [mean_pm_std(row[("mean", s)], row[("std", s)]) for s in segment_ids]
            lines.append(f"| {budget} | {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_recall(segments: pd.DataFrame, path: Path) -> None:
    """Recall@20 per segment per agent (mean over seeds, std as a band); a panel per budget.

    Args:
        segments: The :func:`long_table`.
        path: The image file to write (format from the suffix, e.g. ``.png``).
    """
    budgets = list(dict.fromkeys(segments["budget"]))
    fig = Figure(figsize=(6 * len(budgets), 4), layout="tight")
    axes = fig.subplots(1, len(budgets), squeeze=False)
    for ax, budget in zip(axes[0], budgets, strict=True):
        part = segments[segments["budget"] == budget]
        for agent, rows in part.groupby("agent", sort=False):
            stats = rows.groupby("segment")["recall@20"].agg(["mean", "std"]).fillna(0.0)
            ax.plot(stats.index, stats["mean"], marker="o", label=agent)
            ax.fill_between(
                stats.index, stats["mean"] - stats["std"], stats["mean"] + stats["std"], alpha=0.2
            )
        ax.set(title=f"budget {budget}", xlabel="segment", ylabel="Recall@20")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend()
    _save_figure(fig, path)


def plot_sizes(results: Sequence[tuple[Any, RunResult]], path: Path) -> None:
    """Embedding size against frequency rank on the last segment (first budget, first seed).

    One line per agent (its first run under the first budget), users and items in two panels;
    runs without saved sizes (``last_sizes`` empty) are left out. Entities are ranked as the
    sizers rank them (:func:`scall_env.sizing.frequency_order`: equal counts, the newer first),
    so a size assignment by frequency rank reads as a non-increasing line.

    Args:
        results: ``(budget, result)`` pairs as for :func:`long_table`.
        path: The image file to write.
    """
    first_budget = results[0][0]
    fig = Figure(figsize=(11, 4), layout="tight")
    axes = fig.subplots(1, 2)
    shown: set[str] = set()
    for budget, result in results:
        if budget != first_budget or result.algo in shown or not result.last_sizes:
            continue
        shown.add(result.algo)
        for ax, kind in zip(axes, ("user", "item"), strict=True):
            order = frequency_order(result.last_sizes[f"{kind}_freq"])
            ranked = result.last_sizes[f"{kind}_sizes"][order]
            ax.plot(np.arange(1, len(ranked) + 1), ranked, label=result.algo, linewidth=1)
    segment = int(results[0][1].last_sizes["segment"]) if results[0][1].last_sizes else "last"
    for ax, kind in zip(axes, ("users", "items"), strict=True):
        ax.set(
            title=f"{kind}, segment {segment}",
            xlabel="frequency rank",
            ylabel="embedding size",
            xscale="log",
        )
        ax.legend()
    _save_figure(fig, path)


def plot_params(segments: pd.DataFrame, path: Path) -> None:
    """Parameters used (mean over seeds) and the budget, per segment and agent.

    Args:
        segments: The :func:`long_table`.
        path: The image file to write.
    """
    fig = Figure(figsize=(6, 4), layout="tight")
    ax = fig.subplots()
    for (budget, agent), rows in segments.groupby(["budget", "agent"], sort=False):
        used = rows.groupby("segment")["params_used"].mean()
        ax.plot(used.index, used.values, marker="o", label=f"{agent} (budget {budget})")
    for budget, rows in segments.groupby("budget", sort=False):
        limit = rows.groupby("segment")["budget_params"].first()
        ax.plot(limit.index, limit.values, "k--", linewidth=1, label=f"budget {budget}")
    ax.set(xlabel="segment", ylabel="embedding parameters")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    _save_figure(fig, path)


def plot_intervals(table: pd.DataFrame, path: Path) -> None:
    """IQM and bootstrap interval of Recall@20 and NDCG@20 per (budget, agent), one panel each.

    Args:
        table: A :func:`agents.stats.statistics_table`.
        path: The image file to write.
    """
    labels = [f"{row.agent} ({row.budget})" for row in table.itertuples()]
    fig = Figure(figsize=(10, 1.5 + 0.4 * len(table)), layout="tight")
    axes = fig.subplots(1, len(STAT_METRICS), sharey=True, squeeze=False)[0]
    rank = np.arange(len(table))[::-1]  # the first row at the top
    for ax, metric in zip(axes, STAT_METRICS, strict=True):
        centre = table[f"{metric}_iqm"].to_numpy()
        spread = [centre - table[f"{metric}_ci_low"], table[f"{metric}_ci_high"] - centre]
        ax.errorbar(centre, rank, xerr=np.abs(spread), fmt="o", capsize=4)
        ax.set(title=f"{metric}: IQM and 95% bootstrap interval", xlabel=metric)
    axes[0].set_yticks(rank, labels)
    _save_figure(fig, path)


def write_statistics(segments: pd.DataFrame, output: Path, reference_agent: str = "scall") -> str:
    """Write ``statistics.csv`` and ``intervals.png`` into ``output``; returns the Markdown section.

    Args:
        segments: The :func:`long_table`.
        output: An existing folder.
        reference_agent: The agent tested against every other (see
            :func:`agents.stats.statistics_table`).
    """
    table = statistics_table(segments, reference_agent)
    _write_csv(table, output / "statistics.csv")
    if not table.empty:
        plot_intervals(table, output / "intervals.png")
    return statistics_markdown(table, reference_agent)


def write_report(
    results: Sequence[tuple[Any, RunResult]],
    config: dict[str, Any],
    output: Path,
    missing: Sequence[str] = (),
) -> str:
    """Write every table and plot of a comparison into ``output``; returns the markdown report.

    Files: ``segments.csv`` (:func:`long_table`), ``summary.csv`` (:func:`summary_table`),
    ``results.md`` (:func:`markdown`, the total wall time of the runs and the statistics
    section), ``statistics.csv`` and ``intervals.png`` (:func:`write_statistics`, SCALL's agent
    as the reference), ``recall_per_segment.png``, ``size_vs_rank.png`` and
    ``params_vs_budget.png``.

    Args:
        results: ``(budget, result)`` pairs, at least one.
        config: The comparison config (see :func:`markdown`).
        output: An existing folder.
        missing: Names of the config's runs not finished yet (listed in ``results.md``).
    """
    segments = long_table(results)
    summary = summary_table(segments)
    _write_csv(segments, output / "segments.csv")
    _write_csv(summary, output / "summary.csv")
    report = markdown(summary, segments, config)
    run_time = sum(result.wall_time_s for _, result in results)
    report += f"\nWall time of the runs (training, excluding set-up): {run_time:.0f} s.\n"
    if missing:
        report += f"\nNot finished yet ({len(missing)} runs): {', '.join(missing)}.\n"
    report += "\n" + write_statistics(segments, output)
    write_text_atomic(output / "results.md", report)
    plot_recall(segments, output / "recall_per_segment.png")
    plot_sizes(results, output / "size_vs_rank.png")
    plot_params(segments, output / "params_vs_budget.png")
    return report
