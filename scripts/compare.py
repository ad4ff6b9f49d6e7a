"""Compare agents x seeds (x budgets) on the same environment settings: tables and plots.

A YAML config names the environment, its keyword arguments, the agents, seeds, budgets and the
output folder; command-line options override it. Every run goes through the same harness as
``scripts/train_agent.py`` (one pass over the stream by default). Outputs in ``--output``:

* ``results.md`` / ``summary.csv``: per agent (and budget), Recall@20 and NDCG@20 per segment
  and averaged over segments >= 1, mean +- std over seeds, and parameters used vs the budget;
* ``segments.csv``: every committed segment of every run (long format);
* ``recall_per_segment.png``, ``size_vs_rank.png`` (embedding size against frequency rank on the
  last segment), ``params_vs_budget.png``;
* ``runs/``: each run's own outputs (model, results.json, trials.csv, TensorBoard logs).

Examples:
    python scripts/compare.py --config configs/quickstart.yaml
    python scripts/compare.py --config configs/ml1m.yaml --seeds 0 1 --agents scall uniform
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import matplotlib
import numpy as np
import pandas as pd
import yaml

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from agents.factory import ALGOS, load_hyperparams  # noqa: E402
from agents.harness import RunResult, load_run, run_agent  # noqa: E402

CONFIG_KEYS = {
    "env", "env_kwargs", "agents", "seeds", "budgets", "total_timesteps", "output",
    "hyperparams", "device",
}  # fmt: skip


def load_config(path: Path | None) -> dict[str, Any]:
    """Read a comparison config (a YAML mapping); unknown keys are an error."""
    if path is None:
        return {}
    if not path.exists():
        raise FileNotFoundError(f"config file {path} does not exist")
    config = yaml.safe_load(path.read_text()) or {}
    if not isinstance(config, dict):
        raise ValueError(f"{path} must hold a YAML mapping")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"unknown keys {sorted(unknown)} in {path}; allowed: {sorted(CONFIG_KEYS)}"
        )
    return config


def run_all(
    config: dict[str, Any], output: Path, progress: bool, resume: bool = False
) -> list[tuple[Any, RunResult]]:
    """Run every (budget, agent, seed); returns ``(budget, result)`` pairs.

    With ``resume``, a run whose folder already holds a ``results.json`` of the same agent, env,
    seed and environment arguments is read back instead of run again.
    """
    env_id = config["env"]
    budgets = config.get("budgets") or [None]
    results = []
    for budget in budgets:
        env_kwargs = dict(config.get("env_kwargs") or {})
        if budget is not None:
            env_kwargs["budget"] = budget
        for algo in config["agents"]:
            overrides = (config.get("hyperparams") or {}).get(algo) or {}
            hyperparams = {**load_hyperparams(algo, env_id), **overrides}
            for seed in config["seeds"]:
                name = (
                    f"{algo}/seed{seed}" if budget is None else f"budget{budget}/{algo}/seed{seed}"
                )
                run_dir = output / "runs" / name
                if resume and _finished(run_dir, algo, env_id, int(seed), env_kwargs):
                    print(f"[{time.strftime('%H:%M:%S')}] {name}: reusing {run_dir}", flush=True)
                    results.append((budget, load_run(run_dir)))
                    continue
                print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)
                result = run_agent(
                    algo,
                    env_id,
                    env_kwargs=env_kwargs,
                    hyperparams=hyperparams,
                    seed=int(seed),
                    total_timesteps=config.get("total_timesteps"),
                    device=config.get("device", "auto"),
                    run_dir=run_dir,
                    tensorboard_dir=run_dir / "tb",
                    progress_bar=progress,
                )
                results.append((budget, result))
    return results


def _finished(run_dir: Path, algo: str, env_id: str, seed: int, env_kwargs: dict) -> bool:
    path = run_dir / "results.json"
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    same_kwargs = all(done["env_kwargs"].get(k) == v for k, v in env_kwargs.items())
    return (done["algo"], done["env_id"], done["seed"]) == (algo, env_id, seed) and same_kwargs


def long_table(results: list[tuple[Any, RunResult]]) -> pd.DataFrame:
    """One row per committed segment of every run."""
    rows = []
    for budget, result in results:
        for segment in result.segments:
            rows.append(
                {
                    "budget": budget if budget is not None else "default",
                    "agent": result.algo,
                    "seed": result.seed,
                    **{k: v for k, v in segment.items() if k not in ("action", "episode")},
                    "wall_time_s": result.wall_time_s,
                }
            )
    return pd.DataFrame(rows)


def summary_table(segments: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over seeds per (budget, agent): per-segment and averaged metrics."""
    later = segments[segments["segment"] >= 1]
    per_run = later.groupby(["budget", "agent", "seed"])[["recall@20", "ndcg@20"]].mean()
    averages = per_run.groupby(["budget", "agent"]).agg(["mean", "std"])
    averages.columns = [f"avg_{metric}_{stat}" for metric, stat in averages.columns]
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
    return averages.join(usage).join(per_segment).reset_index()


def markdown(summary: pd.DataFrame, segments: pd.DataFrame, config: dict[str, Any]) -> str:
    """Markdown report: averages, per-segment Recall@20 and NDCG@20, parameters vs budget."""

    def pm(mean: float, std: float) -> str:
        return f"{mean:.4f}" if np.isnan(std) else f"{mean:.4f} ± {std:.4f}"

    seeds = config["seeds"]
    lines = [
        f"# {config['env']}: {', '.join(config['agents'])}",
        "",
        f"Seeds {seeds}; mean ± std over seeds (one seed: the value); averages over segments "
        ">= 1 (as in the paper).",
        f"Environment arguments: `{json.dumps(config.get('env_kwargs') or {})}`.",
        "",
        "| budget | agent | Recall@20 | NDCG@20 | params / budget (max) |",
        "|---|---|---|---|---|",
    ]
    for _, row in summary.iterrows():
        lines.append(
            f"| {row['budget']} | {row['agent']} | "
            f"{pm(row['avg_recall@20_mean'], row['avg_recall@20_std'])} | "
            f"{pm(row['avg_ndcg@20_mean'], row['avg_ndcg@20_std'])} | "
            f"{row['params_over_budget_max']:.4f} |"
        )
    for metric in ("recall@20", "ndcg@20"):
        table = segments.pivot_table(
            index=["budget", "agent"],
            columns="segment",
            values=metric,
            aggfunc=["mean", "std"],
            dropna=False,
        )
        segment_ids = sorted(segments["segment"].unique())
        lines += ["", f"{metric} per segment:", ""]
        lines.append("| budget | agent | " + " | ".join(f"D{s}" for s in segment_ids) + " |")
        lines.append("|---|---|" + "---|" * len(segment_ids))
        for (budget, agent), row in table.iterrows():
            cells = [pm(row[("mean", s)], row[("std", s)]) for s in segment_ids]
            lines.append(f"| {budget} | {agent} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot_recall(segments: pd.DataFrame, path: Path) -> None:
    """Recall@20 per segment per agent (mean over seeds, std as a band); a panel per budget."""
    budgets = list(dict.fromkeys(segments["budget"]))
    fig, axes = plt.subplots(1, len(budgets), figsize=(6 * len(budgets), 4), squeeze=False)
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
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sizes(results: list[tuple[Any, RunResult]], path: Path) -> None:
    """Embedding size against frequency rank on the last segment (first budget, first seed)."""
    first_budget = results[0][0]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    shown: set[str] = set()
    for budget, result in results:
        if budget != first_budget or result.algo in shown or not result.last_sizes:
            continue
        shown.add(result.algo)
        for ax, kind in zip(axes, ("user", "item"), strict=True):
            freq = result.last_sizes[f"{kind}_freq"]
            sizes = result.last_sizes[f"{kind}_sizes"]
            order = np.argsort(-freq, kind="stable")
            ax.plot(np.arange(1, len(order) + 1), sizes[order], label=result.algo, linewidth=1)
    segment = int(results[0][1].last_sizes["segment"]) if results[0][1].last_sizes else "last"
    for ax, kind in zip(axes, ("users", "items"), strict=True):
        ax.set(
            title=f"{kind}, segment {segment}",
            xlabel="frequency rank",
            ylabel="embedding size",
            xscale="log",
        )
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_params(segments: pd.DataFrame, path: Path) -> None:
    """Parameters used (mean over seeds) and the budget, per segment and agent."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for (budget, agent), rows in segments.groupby(["budget", "agent"], sort=False):
        used = rows.groupby("segment")["params_used"].mean()
        ax.plot(used.index, used.values, marker="o", label=f"{agent} (budget {budget})")
    for budget, rows in segments.groupby("budget", sort=False):
        limit = rows.groupby("segment")["budget_params"].first()
        ax.plot(limit.index, limit.values, "k--", linewidth=1, label=f"budget {budget}")
    ax.set(xlabel="segment", ylabel="embedding parameters")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="comparison YAML (keys: env, env_kwargs, agents, seeds, budgets, "
        "total_timesteps, output, hyperparams, device)",
    )
    parser.add_argument("--env", default=None, help="registered env id (overrides the config)")
    parser.add_argument(
        "--env-kwargs",
        type=json.loads,
        default=None,
        metavar="JSON",
        help="gym.make keyword arguments as a JSON object, merged over the config's",
    )
    parser.add_argument(
        "--agents", nargs="+", choices=ALGOS, default=None, help="agents to compare"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=None, help="seeds (default: 0)")
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=float,
        default=None,
        help="budget values (the env's budget_type); default: the env's",
    )
    parser.add_argument(
        "--total-timesteps",
        type=int,
        default=None,
        help="steps per run (default: one pass over the stream)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="output folder (default: results/<env>)"
    )
    parser.add_argument(
        "--device", default=None, help="torch device: auto, cpu, cuda (default: auto)"
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse runs whose folder already holds results.json (same agent, env, seed, env args)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the per-run progress bars")
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for key in ("env", "agents", "seeds", "budgets", "total_timesteps", "output", "device"):
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.env_kwargs is not None:
        if not isinstance(args.env_kwargs, dict):
            parser.error("--env-kwargs must be a JSON object")
        config["env_kwargs"] = {**(config.get("env_kwargs") or {}), **args.env_kwargs}
    config.setdefault("seeds", [0])
    if not config.get("env") or not config.get("agents"):
        parser.error("name the environment and the agents (--env/--agents or a --config)")
    if config["env"] not in gym.registry:
        parser.error(f"unknown env {config['env']!r}")
    unknown = [a for a in config["agents"] if a not in ALGOS]
    if unknown:
        parser.error(f"unknown agents {unknown}; choose from {', '.join(ALGOS)}")
    if config.get("total_timesteps") is not None and int(config["total_timesteps"]) < 1:
        parser.error("total_timesteps must be >= 1")
    output = Path(config.get("output") or Path("results") / config["env"])
    output.mkdir(parents=True, exist_ok=True)

    try:
        results = run_all(config, output, progress=not args.no_progress, resume=args.resume)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
    segments = long_table(results)
    summary = summary_table(segments)
    segments.to_csv(output / "segments.csv", index=False)
    summary.to_csv(output / "summary.csv", index=False)
    report = markdown(summary, segments, config)
    run_time = sum(result.wall_time_s for _, result in results)
    report += f"\nWall time of the runs (training, excluding set-up): {run_time:.0f} s.\n"
    (output / "results.md").write_text(report)
    plot_recall(segments, output / "recall_per_segment.png")
    plot_sizes(results, output / "size_vs_rank.png")
    plot_params(segments, output / "params_vs_budget.png")
    print(report)
    print(f"outputs in {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
