"""Compare agents x seeds (x budgets) on the same environment settings: tables and plots.

A YAML config names the environment, its keyword arguments, the agents, seeds, budgets and the
output folder; command-line options override it. Every run goes through the same harness as
``scall-train`` (one pass over the stream by default). Outputs in ``--output``:

* ``results.md`` / ``summary.csv``: per agent (and budget), Recall@20 and NDCG@20 per segment
  and averaged over segments >= 1, mean +- std over seeds, and parameters used vs the budget;
* ``segments.csv``: every committed segment of every run (long format);
* ``recall_per_segment.png``, ``size_vs_rank.png`` (embedding size against frequency rank on the
  last segment), ``params_vs_budget.png``;
* ``runs/``: each run's own outputs (model, results.json, trials.csv, TensorBoard logs).

Examples (``scall-compare`` is the installed console script; ``python scripts/compare.py`` takes
the same arguments):
    scall-compare --config configs/quickstart.yaml
    scall-compare --config configs/ml1m.yaml --seeds 0 1 --agents scall uniform
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from agents.factory import ALGOS, load_hyperparams
from agents.harness import RunResult, load_run, run_agent
from agents.report import write_report
from scall_cli._args import (
    USER_ERRORS,
    add_device,
    add_no_progress,
    check_env,
    fail,
    json_object,
    new_parser,
    positive_int,
)

CONFIG_KEYS = {
    "env", "env_kwargs", "agents", "seeds", "budgets", "total_timesteps", "output",
    "hyperparams", "device",
}  # fmt: skip
#: Config keys that a command-line option of the same name replaces.
OVERRIDABLE = ("env", "agents", "seeds", "budgets", "total_timesteps", "output", "device")


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
    """Whether ``run_dir`` holds the results of this agent, env, seed and env arguments."""
    path = run_dir / "results.json"
    if not path.exists():
        return False
    done = json.loads(path.read_text())
    same_kwargs = all(done["env_kwargs"].get(k) == v for k, v in env_kwargs.items())
    return (done["algo"], done["env_id"], done["seed"]) == (algo, env_id, seed) and same_kwargs


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-compare`` parser; its description is this module's docstring."""
    parser = new_parser(__doc__)
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
        type=json_object,
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
        type=positive_int,
        default=None,
        help="steps per run (default: one pass over the stream)",
    )
    parser.add_argument(
        "--output", type=Path, default=None, help="output folder (default: results/<env>)"
    )
    add_device(parser, default=None)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="reuse runs whose folder already holds results.json (same agent, env, seed, env args)",
    )
    add_no_progress(parser, "the per-run progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and write its tables and plots; returns the exit status.

    Args:
        argv: The arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except (ValueError, FileNotFoundError) as exc:
        parser.error(str(exc))
    for key in OVERRIDABLE:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.env_kwargs is not None:
        config["env_kwargs"] = {**(config.get("env_kwargs") or {}), **args.env_kwargs}
    config.setdefault("seeds", [0])
    if not config.get("env") or not config.get("agents"):
        parser.error("name the environment and the agents (--env/--agents or a --config)")
    check_env(parser, config["env"])
    unknown = [a for a in config["agents"] if a not in ALGOS]
    if unknown:
        parser.error(f"unknown agents {unknown}; choose from {', '.join(ALGOS)}")
    if config.get("total_timesteps") is not None and int(config["total_timesteps"]) < 1:
        parser.error("total_timesteps must be >= 1")
    output = Path(config.get("output") or Path("results") / config["env"])
    output.mkdir(parents=True, exist_ok=True)

    try:
        results = run_all(config, output, progress=not args.no_progress, resume=args.resume)
    except USER_ERRORS as exc:
        fail(parser, exc)
    report = write_report(results, config, output)
    print(report)
    print(f"outputs in {output}")
    return 0


if __name__ == "__main__":  # python -m scall_cli.compare
    sys.exit(main())
