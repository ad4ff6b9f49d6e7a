"""Compare agents x seeds (x budgets) on the same environment settings: tables and plots.

A YAML config names the environment, its keyword arguments, the agents, seeds, budgets and the
output folder; command-line options override it. Every run goes through the same harness as
``scall-train`` (one pass over the stream by default). Outputs in ``--output``:

* ``results.md`` / ``summary.csv``: per agent (and budget), Recall@20 and NDCG@20 per segment
  and averaged over segments >= 1, mean +- std over seeds, and parameters used vs the budget;
* ``segments.csv``: every committed segment of every run (long format);
* ``recall_per_segment.png``, ``size_vs_rank.png`` (embedding size against frequency rank on the
  last segment), ``params_vs_budget.png``;
* ``comparison.yaml``: the config as run, overrides included (``--config`` it to remake them);
* ``runs/``: each run's own outputs (model, results.json, trials.csv, TensorBoard logs).

``--resume`` reuses a run only when its ``results.json`` holds the fingerprint of exactly the
settings asked for now (agent, env id and every env argument with its default, hyper-parameters,
seed, steps, device, package versions); an unfinished run with a checkpoint of the same settings
continues from its last committed segment; a run made otherwise, or whose files are unreadable,
is run again, with a note saying why. ``--report-only`` runs nothing: the tables are made from
the runs already finished (the same check as ``--resume``) and ``results.md`` lists the others,
so a long comparison can be read, and its tables committed, before it ends.

``--backend serial | process | ray`` runs the runs one after the other, in ``--workers`` local
processes, or as Ray tasks (``--ray-address`` / ``$RAY_ADDRESS`` joins a cluster, else a local
one is started); each worker, and a serial comparison, uses ``--threads-per-worker`` torch
threads (default 1: the SAC agents' numbers depend on it; :mod:`agents.parallel`).
Every committed segment is printed as it happens; the tables are made from the finished runs, in
the config's order, so every backend gives the same tables. Baselines that do not use the
search's trials (uniform, frequency, random, fixed) commit without them (``segments.csv`` says
``trials`` 0) unless ``--baseline-trials``; uniform, frequency and fixed commit the same segments
either way.

Examples (``scall-compare`` is the installed console script; ``python scripts/compare.py`` takes
the same arguments):
    scall-compare --config configs/quickstart.yaml
    scall-compare --config configs/ml1m.yaml --seeds 0 1 --agents scall uniform
    scall-compare --config configs/quickstart.yaml --backend process --workers 2
    scall-compare --config configs/paper-ml1m.yaml --report-only
"""

from __future__ import annotations

import argparse
import json
import math
import numbers
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from agents.checkpoint import read_checkpoint
from agents.factory import ALGOS, load_hyperparams, read_yaml
from agents.harness import RunResult, differences, finished_run, run_agent
from agents.parallel import BACKENDS, run_units
from agents.report import write_report
from agents.runlock import check_not_in_use
from agents.settings import RunOptions, run_settings
from scall_cli._args import (
    USER_ERRORS,
    add_baseline_trials,
    add_device,
    add_no_progress,
    check_env,
    check_output_dir,
    fail,
    json_object,
    new_parser,
    non_negative_int,
    positive_int,
    removed_on_error,
)
from scall_env.cache import write_text_atomic

COMPARISON_FILE = "comparison.yaml"
"""The comparison's config as run (command-line overrides included), written beside its tables."""

CONFIG_KEYS = {
    "env", "env_kwargs", "agents", "seeds", "budgets", "total_timesteps", "output",
    "hyperparams", "device", "backend", "workers", "threads_per_worker", "ray_address",
    "baseline_trials",
}  # fmt: skip
#: Config keys that a command-line option of the same name replaces.
OVERRIDABLE = (
    "env", "agents", "seeds", "budgets", "total_timesteps", "output", "device", "backend",
    "workers", "threads_per_worker", "ray_address",
)  # fmt: skip


@dataclass(frozen=True)
class PlannedRun:
    """One (budget, agent, seed) of a comparison, resolved before anything runs: the unit of
    work of every backend (picklable).

    Attributes:
        budget: The budget value (``None``: the env's).
        name: ``[budget<b>/]<algo>/seed<s>``, also the run folder under ``<output>/runs``.
        run_dir: The run's folder.
        algo: Agent name.
        env_id: Environment id.
        options: The run's :class:`~agents.settings.RunOptions` as keyword arguments.
        settings: What the run is made with (:func:`agents.settings.run_settings`).
        resume: Continue from the run's checkpoint.
        progress_bar: Show the run's progress bar.
    """

    budget: Any
    name: str
    run_dir: Path
    algo: str
    env_id: str
    options: dict[str, Any]
    settings: dict[str, Any]
    resume: bool = False
    progress_bar: bool = False


def load_config(path: Path | None) -> dict[str, Any]:
    """Read a comparison config (a YAML mapping); unknown keys are an error."""
    if path is None:
        return {}
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist (or is no file)")
    config = read_yaml(path, "config file") or {}
    if not isinstance(config, dict):
        raise ValueError(f"config file {path} must hold a YAML mapping of {sorted(CONFIG_KEYS)}")
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(
            f"unknown keys {sorted(unknown)} in {path}; allowed: {sorted(CONFIG_KEYS)}"
        )
    return config


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_list(config: dict[str, Any], key: str, ok: Callable[[Any], bool], what: str) -> None:
    values = config.get(key)
    if not isinstance(values, list) or not values or not all(ok(v) for v in values):
        raise ValueError(f"{key} must be a non-empty list of {what}, got {values!r}")
    repeated = sorted({repr(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(
            f"{key} lists {', '.join(repeated)} more than once; each run must be distinct"
        )


def check_config(config: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the first key whose value is of the wrong kind or repeated."""
    _check_list(config, "agents", lambda a: a in ALGOS, f"agents from {', '.join(ALGOS)}")
    _check_list(config, "seeds", lambda s: _is_int(s) and s >= 0, "integers >= 0")
    if config.get("budgets") is not None:
        _check_list(
            config,
            "budgets",
            lambda b: _is_real(b) and math.isfinite(b) and b > 0,
            "finite numbers > 0",
        )
    steps = config.get("total_timesteps")
    if steps is not None and not (_is_int(steps) and steps >= 1):
        raise ValueError(f"total_timesteps must be an integer >= 1, got {steps!r}")
    for key in ("env_kwargs", "hyperparams"):
        if not isinstance(config.get(key) or {}, dict):
            raise ValueError(f"{key} must be a mapping, got {config[key]!r}")
    for algo, overrides in (config.get("hyperparams") or {}).items():
        if algo not in ALGOS or not isinstance(overrides or {}, dict):
            raise ValueError(
                f"hyperparams must map agent names ({', '.join(ALGOS)}) to mappings, "
                f"got {algo!r}: {overrides!r}"
            )
    for key in ("output", "device", "ray_address"):
        if config.get(key) is not None and not isinstance(config[key], str | Path):
            raise ValueError(f"{key} must be a string, got {config[key]!r}")
    if config.get("backend", "serial") not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {config['backend']!r}")
    for key in ("workers", "threads_per_worker"):
        value = config.get(key)
        if value is not None and not (_is_int(value) and value >= 1):
            raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
    if not isinstance(config.get("baseline_trials", False), bool):
        raise ValueError(
            f"baseline_trials must be true or false, got {config['baseline_trials']!r}"
        )


def plan_runs(config: dict[str, Any], output: Path, progress: bool = False) -> list[PlannedRun]:
    """Every (budget, agent, seed) of a checked config, its settings resolved and validated.

    Raises:
        ValueError, TypeError, FileNotFoundError: A setting no run would accept.
    """
    env_id = config["env"]
    bars = progress and config.get("backend", "serial") == "serial"  # bars in parallel: a mess
    planned = []
    for budget in config.get("budgets") or [None]:
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
                options = {
                    "env_kwargs": env_kwargs,
                    "hyperparams": hyperparams,
                    "seed": int(seed),
                    "total_timesteps": config.get("total_timesteps"),
                    "device": config.get("device") or "auto",
                    "commit_only": not config.get("baseline_trials", False),
                }
                settings = run_settings(algo, env_id, **options)
                run_dir = output / "runs" / name
                planned.append(
                    PlannedRun(budget, name, run_dir, algo, env_id, options, settings, False, bars)
                )
    return planned


def execute(run: PlannedRun, progress: Callable[[str], None]) -> RunResult:
    """Run one planned run, here or in a worker, telling ``progress`` of every commit.

    Raises:
        ValueError: This process would make the run with other settings than the driver planned
            (other package versions on a worker), or what :func:`run_agent` raises.
    """
    settings = run_settings(run.algo, run.env_id, **run.options)
    if settings != run.settings:
        changed = "; ".join(differences(run.settings, settings))
        raise ValueError(
            f"{run.name}: this worker would make the run with other settings ({changed}); "
            "install the same scall, torch and stable-baselines3 everywhere"
        )

    def on_commit(row: dict[str, Any]) -> None:
        if row["episode"] == 0:  # the first pass: what the tables report
            progress(f"{run.name}: segment {row['segment']} recall@20 {row['recall@20']:.4f}")

    progress(f"{run.name}: {'resuming' if run.resume else 'starting'}")
    with removed_on_error(run.run_dir):
        return run_agent(
            run.algo,
            run.env_id,
            run_dir=run.run_dir,
            tensorboard_dir=run.run_dir / "tb",
            progress_bar=run.progress_bar,
            on_commit=on_commit,
            resume=run.resume,
            **run.options,
        )


def _stamped(line: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {line}", flush=True)


def run_all(
    config: dict[str, Any], output: Path, progress: bool, resume: bool = False
) -> list[tuple[Any, RunResult]]:
    """Run every (budget, agent, seed) on the config's backend; returns ``(budget, result)`` pairs
    in the config's order.

    With ``resume``, a run whose folder holds a readable ``results.json`` with the fingerprint
    of the same settings is read back instead of run again, one with a checkpoint of the same
    settings continues from it; any other is run (with a note). A run that fails leaves no folder
    of its own behind.

    Raises:
        RunInUseError: If another live process is running one of the runs to run (nothing
            starts).
    """
    planned = plan_runs(config, output, progress)  # every run is checked before any runs
    results: dict[int, RunResult] = {}
    todo: list[tuple[int, PlannedRun]] = []
    for i, run in enumerate(planned):
        if resume:
            done, note = finished_run(run.run_dir, run.settings)
            if done is not None:
                _stamped(f"{run.name}: reusing {run.run_dir}")
                results[i] = done
                continue
            checkpoint, why = read_checkpoint(run.run_dir, run.settings)
            if checkpoint is not None:
                run = replace(run, resume=True)
            for reason in (note, why):
                if reason:
                    _stamped(f"{run.name}: running it again: {reason}")
        todo.append((i, run))
    for _, run in todo:  # before any starts: another live comparison may be running one of them
        check_not_in_use(run.run_dir)
    if config.get("backend", "serial") != "serial":
        # workers may start elsewhere (another folder, another machine sharing this one)
        todo = [(i, replace(run, run_dir=run.run_dir.absolute())) for i, run in todo]
        # the searching agents first (stable): they take longest, so the workers end together
        todo.sort(key=lambda item: RunOptions(**item[1].options).skips_search(item[1].algo))
    finished = run_units(
        execute,
        [run for _, run in todo],
        names=[run.name for _, run in todo],
        backend=config.get("backend", "serial"),
        workers=config.get("workers") or 1,
        threads=config.get("threads_per_worker") or 1,
        report=_stamped,
        address=config.get("ray_address"),
    )
    results.update({i: result for (i, _), result in zip(todo, finished, strict=True)})
    return [(run.budget, results[i]) for i, run in enumerate(planned)]


def budget_value(text: str) -> int | float:
    """A ``--budgets`` value: an integer when it is one (``32``, not ``32.0``, as in a YAML config,
    so that the run folders, ``budget32/...``, are the same either way), else a float."""
    value = float(text)
    return int(value) if value.is_integer() else value


def finished_runs(
    config: dict[str, Any], output: Path
) -> tuple[list[tuple[Any, RunResult]], list[str]]:
    """The runs of a checked config already finished in ``output`` (as ``--resume`` would reuse
    them), in the config's order, and the names of the others; runs nothing.

    Raises:
        ValueError: No run of the config has finished there.
    """
    done, missing = [], []
    for run in plan_runs(config, output):
        result, _ = finished_run(run.run_dir, run.settings)
        if result is None:
            missing.append(run.name)
        else:
            done.append((run.budget, result))
    if not done:
        raise ValueError(f"no run of this comparison has finished in {output}/runs yet")
    return done, missing


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-compare`` parser; its description is this module's docstring."""
    parser = new_parser(__doc__)
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="comparison YAML (keys: env, env_kwargs, agents, seeds, budgets, total_timesteps, "
        "output, hyperparams, device, backend, workers, threads_per_worker, ray_address, "
        "baseline_trials)",
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
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=non_negative_int,
        default=None,
        help="seeds, integers >= 0 (default: 0)",
    )
    parser.add_argument(
        "--budgets",
        nargs="+",
        type=budget_value,
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
        help="reuse runs whose results.json has the fingerprint of the same settings, continue "
        "unfinished ones from their checkpoint",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: make the tables from the runs already finished (as --resume would "
        "reuse them) and list the others",
    )
    parser.add_argument(
        "--backend", choices=BACKENDS, default=None, help="where runs run (default: serial)"
    )
    parser.add_argument(
        "--workers", type=positive_int, default=None, help="runs at a time (default: 1)"
    )
    parser.add_argument(
        "--threads-per-worker",
        dest="threads_per_worker",
        type=positive_int,
        default=None,
        help="torch/OpenMP threads of each worker, serial runs too (default: 1; the SAC "
        "agents' numbers depend on it)",
    )
    parser.add_argument(
        "--ray-address",
        dest="ray_address",
        default=None,
        help="Ray cluster to join (default: $RAY_ADDRESS, else a local one)",
    )
    add_baseline_trials(parser)
    add_no_progress(parser, "the per-run progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the comparison of ``argv`` (default ``sys.argv[1:]``), write its tables and plots."""
    parser = build_parser()
    args = parser.parse_args(argv)

    try:
        config = load_config(args.config)
    except USER_ERRORS as exc:
        fail(parser, exc)
    for key in OVERRIDABLE:
        if getattr(args, key) is not None:
            config[key] = getattr(args, key)
    if args.env_kwargs is not None:
        if not isinstance(config.get("env_kwargs") or {}, dict):
            fail(parser, f"env_kwargs must be a mapping, got {config['env_kwargs']!r}")
        config["env_kwargs"] = {**(config.get("env_kwargs") or {}), **args.env_kwargs}
    config.setdefault("seeds", [0])
    if args.baseline_trials:
        config["baseline_trials"] = True
    if not config.get("env") or not config.get("agents"):
        parser.error("name the environment and the agents (--env/--agents or a --config)")
    if not isinstance(config["env"], str):
        fail(parser, f"env must be a registered env id, got {config['env']!r}")
    check_env(parser, config["env"])
    try:
        check_config(config)
        output = Path(config.get("output") or Path("results") / config["env"])
        check_output_dir(output, "--output")
        if args.report_only:
            results, missing = finished_runs(config, output)
        else:
            missing = []
            results = run_all(config, output, progress=not args.no_progress, resume=args.resume)
    except USER_ERRORS as exc:
        fail(parser, exc)
    output.mkdir(parents=True, exist_ok=True)
    report = write_report(results, config, output, missing=missing)
    # the settings that made these tables: --config this file --report-only remakes them
    plain = json.loads(json.dumps(config, default=str))
    write_text_atomic(output / COMPARISON_FILE, yaml.safe_dump(plain, sort_keys=False))
    print(report)
    print(f"outputs in {output}")
    return 0


if __name__ == "__main__":  # python -m scall_cli.compare
    sys.exit(main())
