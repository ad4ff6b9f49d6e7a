"""Gather ablation comparisons (one ``compare.py`` output folder per variant) into one table.

Each sub-folder of ``ROOT`` is one variant: a finished ``compare.py`` output holding
``segments.csv`` (every committed segment of every run) and each run's ``results.json`` under
``runs/`` (``runs/<agent>/seed<s>``, or ``runs/budget<b>/<agent>/seed<s>`` for a comparison over
budgets). The table has, per variant, budget (when the comparison has budgets) and agent: the
environment arguments the runs were given (besides ``device`` and ``data_dir``), seeds,
Recall@20 and NDCG@20 averaged over segments >= 1 (mean +- std over seeds), the mean number of
search trials a segment got, and the mean wall time of a run. It is printed and written to
``ROOT/table.md``.

Example:
    scall-ablation-table results/ablation-ml1m-mf   (or: python scripts/ablation_table.py ...)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from agents.report import DEFAULT_BUDGET
from scall_cli._args import fail, new_parser
from scall_env.cache import write_text_atomic


def variant_rows(folder: Path) -> list[dict[str, object]]:
    """One row per agent (and budget, if the comparison has budgets) of a variant's folder."""
    segments = pd.read_csv(folder / "segments.csv")
    later = segments[segments["segment"] >= 1]
    # a comparison without budgets has the budget column "default" (and no budget<b> folders)
    by_budget = (later["budget"].astype(str) != DEFAULT_BUDGET).any()
    rows = []
    # budget<b> folders are named as the config wrote b (8, 16.5), the CSV column reads 8.0, 16.5
    budget_folders = {float(p.name.removeprefix("budget")): p for p in folder.glob("runs/budget*")}
    for key, part in later.groupby(["budget", "agent"] if by_budget else ["agent"], sort=False):
        budget, agent = key if by_budget else (None, key[0])
        runs = (budget_folders[float(budget)] if by_budget else folder / "runs") / str(agent)
        per_seed = part.groupby("seed")[["recall@20", "ndcg@20"]].mean()
        # only the runs the comparison's table holds (a resumed comparison may be under way)
        summaries = [
            json.loads((runs / f"seed{seed}" / "results.json").read_text())
            for seed in per_seed.index
        ]
        env_kwargs = summaries[0]["env_kwargs"] if summaries else {}
        shown = {k: v for k, v in env_kwargs.items() if k not in ("device", "data_dir")}
        rows.append(
            {
                "variant": folder.name,
                **({"budget": budget} if by_budget else {}),
                "agent": agent,
                "env_kwargs": json.dumps(shown, sort_keys=True),
                "seeds": len(per_seed),
                "recall@20": _pm(per_seed["recall@20"]),
                "ndcg@20": _pm(per_seed["ndcg@20"]),
                "trials_per_segment": round(float(part["trials"].mean()), 1),
                "run_minutes": round(float(np.mean([s["wall_time_s"] for s in summaries])) / 60, 1)
                if summaries
                else float("nan"),
            }
        )
    return rows


def _pm(values: pd.Series) -> str:
    return (
        f"{values.mean():.4f}" if len(values) < 2 else f"{values.mean():.4f} ± {values.std():.4f}"
    )


def markdown(rows: list[dict[str, object]]) -> str:
    """The rows as a Markdown table."""
    columns = list(rows[0])
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write and print the table of ``argv``'s root (default ``sys.argv[1:]``)."""
    parser = new_parser(__doc__)
    parser.add_argument("root", type=Path, help="folder holding one comparison folder per variant")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        fail(parser, f"{args.root} is no folder; give the folder of the variants' comparisons")
    folders = sorted(p for p in args.root.iterdir() if (p / "segments.csv").exists())
    if not folders:
        fail(parser, f"no finished comparison (segments.csv) under {args.root}")
    try:
        rows = [row for folder in folders for row in variant_rows(folder)]
    except (OSError, ValueError, KeyError) as exc:  # a run's results.json missing or damaged
        fail(parser, f"cannot read a comparison under {args.root}: {exc}")
    if len({tuple(row) for row in rows}) > 1:
        fail(parser, "mix of comparisons with and without budgets; gather them apart")
    table = markdown(rows)
    write_text_atomic(args.root / "table.md", table)
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
