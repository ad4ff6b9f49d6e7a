"""Train an agent online over a stream (the paper's single pass) and report the committed metrics.

Every agent goes through the same loop: SCALL's SAC (``scall``), the SB3 algorithms (``sac``,
``td3``, ``ddpg``, ``ppo``, ``a2c``) and the baselines (``uniform``, ``frequency``, ``random``,
``fixed``). Hyper-parameters come from ``configs/algos/<algo>.yaml`` (section ``default``, then
the env id's section), or from ``--config``; ``--hyperparams`` overrides single keys.

Examples:
    python scripts/train_agent.py --algo scall --env Scall-ML1M-v0
    python scripts/train_agent.py --algo sac --env Scall-Synthetic-v0 --seed 3 \\
        --env-kwargs '{"n_segments": 4}' --tensorboard-log runs/tb
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym

from agents.factory import ALGOS, load_hyperparams
from agents.harness import METRICS, run_agent


def json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def positive_int(text: str) -> int:
    """Parse an integer >= 1."""
    try:
        value = int(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from exc
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--algo", required=True, choices=ALGOS, help="agent to train")
    parser.add_argument(
        "--env", default="Scall-ML1M-v0", help="registered env id (default: %(default)s)"
    )
    parser.add_argument(
        "--env-kwargs",
        type=json_object,
        default={},
        metavar="JSON",
        help="keyword arguments of gym.make as a JSON object, e.g. '{\"budget\": 16}'",
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="hyper-parameter YAML (default: configs/algos/<algo>.yaml)",
    )
    parser.add_argument(
        "--hyperparams",
        type=json_object,
        default={},
        metavar="JSON",
        help="hyper-parameter overrides as a JSON object, e.g. '{\"gamma\": 0.9}'",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the env and the agent (default: %(default)s)"
    )
    parser.add_argument(
        "--total-timesteps",
        type=positive_int,
        default=None,
        help="environment steps (default: one pass over the stream, search_steps * (segments - 1))",
    )
    parser.add_argument(
        "--tensorboard-log",
        type=Path,
        default=None,
        help="TensorBoard root: logs go to <root>/tb/<run name> (default: the save path)",
    )
    parser.add_argument("--no-tensorboard", action="store_true", help="write no TensorBoard logs")
    parser.add_argument(
        "--save-path",
        type=Path,
        default=None,
        help="folder for the model, results.json, segments.csv, trials.csv "
        "(default: runs/<env>/<algo>_seed<seed>_<time>)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        help="torch device of the agent and recommender: auto, cpu, cuda (default: %(default)s)",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.env not in gym.registry:
        scall_ids = sorted(k for k in gym.registry if k.startswith("Scall-"))
        parser.error(f"unknown env {args.env!r}; registered: {', '.join(scall_ids)}")
    save_path = args.save_path or Path("runs") / args.env / (
        f"{args.algo}_seed{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    tensorboard_dir = None
    if not args.no_tensorboard:
        tensorboard_dir = (args.tensorboard_log or save_path) / "tb" / save_path.name
    try:
        hyperparams = {**load_hyperparams(args.algo, args.env, args.config), **args.hyperparams}
        result = run_agent(
            args.algo,
            args.env,
            env_kwargs=args.env_kwargs,
            hyperparams=hyperparams,
            seed=args.seed,
            total_timesteps=args.total_timesteps,
            device=args.device,
            run_dir=save_path,
            tensorboard_dir=tensorboard_dir,
            progress_bar=not args.no_progress,
        )
    except (ValueError, TypeError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")
    print(
        f"{result.algo} on {result.env_id}, seed {result.seed}: "
        f"{result.total_timesteps} steps in {result.wall_time_s:.1f} s"
    )
    print(f"{'segment':>8} {'recall@20':>10} {'ndcg@20':>10} {'params':>10} {'budget':>10}")
    for row in result.segments:
        print(
            f"{row['segment']:>8} {row['recall@20']:>10.4f} {row['ndcg@20']:>10.4f} "
            f"{row['params_used']:>10} {row['budget_params']:>10}"
        )
    print(
        "average over segments >= 1: "
        + ", ".join(f"{m} {result.averages[m]:.4f}" for m in METRICS[:2])
    )
    print(f"outputs in {save_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
