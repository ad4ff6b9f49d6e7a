"""Evaluate a saved agent: one pass over a stream with its deterministic action, nothing learned.

The agent is a model saved by scall-train or scall-compare (model.zip for SB3 agents, model.json
for baselines and search agents), or the run folder that holds it. Every trial and every commit
uses agent.predict(obs, deterministic=True). The env, its arguments and the seed default to the
training run's (from the results.json beside the model); --env, --env-kwargs (merged over the
run's arguments when the env is the same) and --seed change them: another budget, another
dataset. The outputs are those of training, less the model: results.json, segments.csv,
trials.csv and sizes_last_segment.npz.

With the same env, arguments and seed a deterministic agent (a trained SB3 agent, fixed,
uniform, frequency) makes the same trials and commits every time, and the baselines that act
the same while training (fixed, uniform, frequency) reproduce their training run's metrics. A
search agent plays its incumbent, the best decision of the last segment it searched.

Examples (scall-evaluate is the installed console script; python scripts/evaluate.py takes the
same arguments):
    scall-evaluate --model runs/Scall-Synthetic-v0/sac_seed0_20250101-120000
    scall-evaluate --model runs/td3/model.zip --algo td3 --env Scall-ML1M-MF-v0 \\
        --env-kwargs '{"budget": 16}' --save-path runs/td3-budget16
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

import scall_env  # noqa: F401  (registers the environment ids)
from agents.baselines import Baseline
from agents.checkpoint import CHECKPOINT_FILE
from agents.commit import live_policy
from agents.factory import ALGOS, env_overrides, load_agent, model_filename
from agents.harness import (
    METRICS,
    RESULTS_FILE,
    RunResult,
    one_pass_timesteps,
    write_outputs,
)
from agents.runlock import RunInUseError, run_lock
from agents.settings import resolved_env_kwargs, run_settings
from scall_cli._args import (
    USER_ERRORS,
    add_device,
    add_no_progress,
    check_env,
    check_output_dir,
    fail,
    json_object,
    new_parser,
    non_negative_int,
    removed_on_error,
)
from scall_cli.compare import COMPARISON_FILE
from scall_env.recsys import flush_denormals_in_thread_pool
from scall_env.wrappers import ScallMonitor


def training_run(model: Path) -> tuple[Path, dict[str, Any]]:
    """The folder of a saved agent and its training run's ``results.json`` (``{}`` if none).

    Raises:
        FileNotFoundError: ``model`` does not exist.
        ValueError: Its ``results.json`` is unreadable.
    """
    if not model.exists():
        raise FileNotFoundError(
            f"--model {model} does not exist; give a saved agent (model.zip, model.json) or the "
            "run folder holding one"
        )
    folder = model if model.is_dir() else model.parent
    path = folder / RESULTS_FILE
    if not path.is_file():
        return folder, {}
    try:
        run = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc}); move it away or repair it") from exc
    settings = run.get("settings") if isinstance(run, dict) else None
    if not (
        isinstance(settings, dict)
        and isinstance(settings.get("env_kwargs"), dict)
        and {"algo", "env_id", "seed"} <= run.keys()
    ):
        raise ValueError(f"{path} lacks algo, env_id, seed or settings.env_kwargs; repair it")
    return folder, run


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The evaluation's settings: ``args`` completed from the training run beside the model.

    Returns:
        ``algo``, ``model`` (the saved file), ``env_id``, ``env_kwargs`` and ``seed``.

    Raises:
        ValueError, FileNotFoundError: Something the arguments and the run leave open or
            contradictory, or a model file that is missing.
    """
    folder, run = training_run(args.model)
    algo = args.algo or run.get("algo")
    if algo is None:
        raise ValueError(f"give --algo: {folder} holds no {RESULTS_FILE} naming the agent")
    if run and args.algo and args.algo != run["algo"]:
        raise ValueError(
            f"--algo {args.algo}, but {folder / RESULTS_FILE} was made by {run['algo']}"
        )
    model = folder / model_filename(algo) if args.model.is_dir() else args.model
    if not model.is_file():
        raise FileNotFoundError(f"{folder} holds no {model.name}, the saved {algo} agent")
    env_id = args.env or run.get("env_id")
    if env_id is None:
        raise ValueError(f"give --env: {folder} holds no {RESULTS_FILE} naming the env")
    inherited = run["settings"]["env_kwargs"] if run and env_id == run["env_id"] else {}
    # --device chooses the env's device too, unless --env-kwargs names one
    inherited = {k: v for k, v in inherited.items() if k != "device"}
    seed = args.seed if args.seed is not None else run.get("seed", 0)
    return {
        "algo": algo,
        "model": model,
        "env_id": env_id,
        "env_kwargs": {**inherited, **args.env_kwargs},
        "seed": seed,
    }


def evaluate_agent(
    algo: str,
    model: Path,
    env_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    run_dir: Path,
    progress_bar: bool = False,
) -> RunResult:
    """Play the saved agent deterministically over one pass and write the run's files.

    Args:
        algo: Agent name (see :data:`agents.factory.ALGOS`).
        model: The saved agent.
        env_id: A registered environment id.
        env_kwargs: Keyword arguments of ``gym.make``.
        seed: Seed of the env's reset (its trials and training).
        device: Torch device of the agent and, unless ``env_kwargs`` says otherwise, the env.
        run_dir: Output folder (created).
        progress_bar: Show a progress bar.

    Raises:
        ValueError, TypeError: Environment arguments the env refuses.
    """
    # before load_agent: building an SB3 agent's networks runs torch's first parallel operations
    if resolved_env_kwargs(env_id, env_kwargs, device).get("flush_denormals"):
        flush_denormals_in_thread_pool()
    agent = load_agent(algo, model, device=device)
    hyperparams = dict(agent.params) if isinstance(agent, Baseline) else {}  # sizers need them
    settings = run_settings(
        algo, env_id, env_kwargs=env_kwargs, hyperparams=hyperparams, seed=seed, device=device
    )
    # the fingerprint tells an evaluation from training, and one saved agent from another
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    settings["evaluated_model"] = {"path": str(model.resolve()), "sha256": digest}
    kwargs = {"device": device, **(env_kwargs or {}), **env_overrides(algo, hyperparams)}
    refuse_training_run(run_dir)
    with run_lock(run_dir):  # one process at a time in the folder, as for training
        try:  # again: a run may have appeared before the lock was ours
            refuse_training_run(run_dir)
        except FileExistsError as exc:  # a RunInUseError: the caller must not remove the folder
            raise RunInUseError(str(exc)) from exc
        (run_dir / RESULTS_FILE).unlink(missing_ok=True)
        env = gym.make(env_id, **kwargs)
        steps = one_pass_timesteps(env)
        monitor = ScallMonitor(env, progress_total=steps if progress_bar else None)
        env.unwrapped.set_commit_policy(live_policy(agent))
        start = time.perf_counter()
        try:
            obs, _ = monitor.reset(seed=seed)
            for _ in range(steps):
                action = agent.predict(obs, deterministic=True)[0]
                obs, _, terminated, truncated, _ = monitor.step(action)
                if terminated or truncated:
                    break
        finally:
            monitor.close()
        wall = time.perf_counter() - start
        committed = pd.DataFrame(monitor.commits)
        later = committed[committed["segment"] >= 1]
        result = RunResult(
            algo=algo,
            env_id=env_id,
            seed=seed,
            run_dir=run_dir,
            segments=monitor.commits,
            averages={m: float(later[m].mean()) if len(later) else np.nan for m in METRICS},
            total_timesteps=monitor.steps,
            wall_time_s=wall,
            last_sizes=monitor.last_sizes.get(0, {}),
        )
        write_outputs(result, monitor, kwargs, hyperparams, settings)
    return result


def refuse_training_run(run_dir: Path) -> None:
    """Raise ``FileExistsError`` when ``run_dir`` holds a training run (a saved agent, a
    checkpoint, or a ``results.json`` that no evaluation wrote) or a comparison's outputs:
    evaluating there would replace its files. An earlier evaluation's folder may be written
    again."""
    markers = [CHECKPOINT_FILE, *sorted({model_filename(algo) for algo in ALGOS})]
    markers += [COMPARISON_FILE, "summary.csv", "runs"]
    found = [name for name in markers if (run_dir / name).exists()]
    results = run_dir / RESULTS_FILE
    if results.is_file():
        try:
            settings = json.loads(results.read_text()).get("settings", {})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
            settings = {}
        if "evaluated_model" not in settings:
            found.append(RESULTS_FILE)
    if found:
        raise FileExistsError(
            f"--save-path {run_dir} holds a training run or comparison ({', '.join(found)}); "
            "evaluating there would replace its files: give another folder"
        )


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-evaluate`` parser; its description is this module's docstring."""
    parser = new_parser(__doc__)
    parser.add_argument(
        "--model", type=Path, required=True, help="saved agent, or the run folder holding it"
    )
    parser.add_argument(
        "--algo", choices=ALGOS, default=None, help="the agent (default: the training run's)"
    )
    parser.add_argument("--env", default=None, help="registered env id (default: the run's)")
    parser.add_argument(
        "--env-kwargs",
        type=json_object,
        default={},
        metavar="JSON",
        help="gym.make keyword arguments as a JSON object, merged over the run's when --env is "
        "the run's, e.g. '{\"budget\": 16}'",
    )
    parser.add_argument(
        "--seed",
        type=non_negative_int,
        default=None,
        help="seed of the env, an integer >= 0 (default: the run's, else 0)",
    )
    parser.add_argument(
        "--save-path",
        type=Path,
        default=None,
        help="folder for results.json, segments.csv, trials.csv "
        "(default: runs/<env>/<algo>_eval_seed<seed>_<time>)",
    )
    add_device(parser)
    add_no_progress(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Evaluate a saved agent as ``argv`` says; returns the exit status (usage errors exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        plan = resolve(args)
        check_env(parser, plan["env_id"])
        save_path = args.save_path or Path("runs") / plan["env_id"] / (
            f"{plan['algo']}_eval_seed{plan['seed']}_{time.strftime('%Y%m%d-%H%M%S')}"
        )
        check_output_dir(save_path, "--save-path")
        with removed_on_error(save_path):
            result = evaluate_agent(
                **plan, device=args.device, run_dir=save_path, progress_bar=not args.no_progress
            )
    except USER_ERRORS as exc:
        fail(parser, exc)
    print(f"{result.algo} from {plan['model']} on {result.env_id}, seed {result.seed}")
    columns = ["segment", "recall@20", "ndcg@20", "params_used", "budget_params"]
    print(pd.DataFrame(result.segments)[columns].to_string(index=False, float_format="%.4f"))
    print("average over segments >= 1: " + ", ".join(
        f"{metric} {result.averages[metric]:.4f}" for metric in METRICS[:2]
    ))  # fmt: skip
    print(f"outputs in {save_path}")
    return 0


if __name__ == "__main__":  # python -m scall_cli.evaluate
    sys.exit(main())
