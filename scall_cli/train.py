"""Train an agent online over a stream (the paper's single pass) and report the committed metrics.

Every agent goes through the same loop: SCALL's SAC (``scall``), the SB3 algorithms (``sac``,
``td3``, ``ddpg``, ``ppo``, ``a2c``) and the baselines (``uniform``, ``frequency``, ``random``,
``fixed``). Hyper-parameters come from ``configs/algos/<algo>.yaml`` (section ``default``, then
the env id's section), or from ``--config``; ``--hyperparams`` overrides single keys.

Examples (``scall-train`` is the installed console script; ``python scripts/train_agent.py``
takes the same arguments):
    scall-train --algo scall --env Scall-ML1M-v0
    scall-train --algo sac --env Scall-Synthetic-v0 --seed 3 \\
        --env-kwargs '{"n_segments": 4}' --tensorboard-log runs/tb
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agents.factory import ALGOS, load_hyperparams
from agents.harness import METRICS, run_agent
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
    positive_int,
    removed_on_error,
)


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-train`` parser; its description is this module's docstring."""
    parser = new_parser(__doc__)
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
        "--seed",
        type=non_negative_int,
        default=0,
        help="seed of the env and the agent, an integer >= 0 (default: %(default)s)",
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
    add_device(parser)
    add_no_progress(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Train, print the per-segment metrics; returns the exit status (usage errors exit 2).

    Args:
        argv: The arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    check_env(parser, args.env)
    save_path = args.save_path or Path("runs") / args.env / (
        f"{args.algo}_seed{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    tensorboard_dir = None
    if not args.no_tensorboard:
        tensorboard_dir = (args.tensorboard_log or save_path) / "tb" / save_path.name
    run = {
        "env_kwargs": args.env_kwargs,
        "seed": args.seed,
        "total_timesteps": args.total_timesteps,
        "device": args.device,
    }
    try:
        # the outputs here, the settings in run_agent: all checked before any folder is made
        check_output_dir(save_path, "--save-path")
        if tensorboard_dir is not None:
            check_output_dir(tensorboard_dir, "--tensorboard-log")
        hyperparams = {**load_hyperparams(args.algo, args.env, args.config), **args.hyperparams}
        with removed_on_error(save_path), removed_on_error(tensorboard_dir or save_path):
            result = run_agent(
                args.algo,
                args.env,
                hyperparams=hyperparams,
                run_dir=save_path,
                tensorboard_dir=tensorboard_dir,
                progress_bar=not args.no_progress,
                **run,
            )
    except USER_ERRORS as exc:
        fail(parser, exc)
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


if __name__ == "__main__":  # python -m scall_cli.train
    sys.exit(main())
