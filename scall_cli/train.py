"""Train an agent online over a stream (the paper's single pass) and report the committed metrics.

Every agent goes through the same loop: SCALL's SAC (``scall``), the SB3 algorithms (``sac``,
``td3``, ``ddpg``, ``ppo``, ``a2c``) and the baselines (``uniform``, ``frequency``, ``random``,
``fixed``). Hyper-parameters come from ``agents/hyperparams/<algo>.yaml`` (section ``default``, then
the env id's section), or from ``--config``; ``--hyperparams`` overrides single keys.

After every committed segment the run writes ``checkpoint.pt`` into its folder; ``--resume
RUN_DIR`` continues a killed run from there with the settings it was started with, and its
outputs are those of a run never interrupted. Baselines that do not use the search's trials
(uniform, frequency, random, fixed) commit without them unless ``--baseline-trials``.

Examples (``scall-train`` is the installed console script; ``python scripts/train_agent.py``
takes the same arguments):
    scall-train --algo scall --env Scall-ML1M-v0
    scall-train --algo sac --env Scall-Synthetic-v0 --seed 3 \\
        --env-kwargs '{"n_segments": 4}' --tensorboard-log runs/tb
    scall-train --resume runs/Scall-ML1M-v0/scall_seed0_20250101-120000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from agents.checkpoint import read_meta
from agents.factory import ALGOS, load_hyperparams
from agents.harness import METRICS, RunResult, run_agent
from scall_cli import _args


def build_parser() -> argparse.ArgumentParser:
    """The ``scall-train`` parser; its description is this module's docstring."""
    parser = _args.new_parser(__doc__)
    first = parser.add_mutually_exclusive_group(required=True)
    first.add_argument("--algo", choices=ALGOS, help="agent to train")
    first.add_argument(
        "--resume",
        type=Path,
        metavar="RUN_DIR",
        help="continue the killed run in RUN_DIR from its checkpoint, with its own settings",
    )
    parser.add_argument(
        "--env", default="Scall-ML1M-v0", help="registered env id (default: %(default)s)"
    )
    for option, what, example in (
        ("--env-kwargs", "keyword arguments of gym.make", '{"budget": 16}'),
        ("--hyperparams", "hyper-parameter overrides", '{"gamma": 0.9}'),
    ):
        parser.add_argument(
            option,
            type=_args.json_object,
            default={},
            metavar="JSON",
            help=f"{what} as a JSON object, e.g. '{example}'",
        )
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="hyper-parameter YAML (default: agents/hyperparams/<algo>.yaml)",
    )
    parser.add_argument(
        "--seed",
        type=_args.non_negative_int,
        default=0,
        help="seed of the env and the agent, an integer >= 0 (default: %(default)s)",
    )
    parser.add_argument(
        "--total-timesteps",
        type=_args.positive_int,
        default=None,
        help="environment steps (default: one pass over the stream, until the episode terminates)",
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
    _args.add_baseline_trials(parser)
    _args.add_device(parser)
    _args.add_no_progress(parser)
    return parser


def _start(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, RunResult]:
    """A new run from the options; its folder is removed again if it fails."""
    _args.check_env(parser, args.env)
    save_path = args.save_path or Path("runs") / args.env / (
        f"{args.algo}_seed{args.seed}_{time.strftime('%Y%m%d-%H%M%S')}"
    )
    tensorboard_dir = None
    if not args.no_tensorboard:
        tensorboard_dir = (args.tensorboard_log or save_path) / "tb" / save_path.name
    # the outputs here, the settings in run_agent: all checked before any folder is made
    _args.check_output_dir(save_path, "--save-path")
    if tensorboard_dir is not None:
        _args.check_output_dir(tensorboard_dir, "--tensorboard-log")
    hyperparams = {**load_hyperparams(args.algo, args.env, args.config), **args.hyperparams}
    with _args.removed_on_error(save_path), _args.removed_on_error(tensorboard_dir or save_path):
        return save_path, run_agent(
            args.algo,
            args.env,
            run_dir=save_path,
            tensorboard_dir=tensorboard_dir,
            progress_bar=not args.no_progress,
            env_kwargs=args.env_kwargs,
            hyperparams=hyperparams,
            seed=args.seed,
            total_timesteps=args.total_timesteps,
            device=args.device,
            commit_only=not args.baseline_trials,
        )


def _resume(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[Path, RunResult]:
    """The killed run in ``args.resume``, continued with the settings in its checkpoint."""
    given = [
        "--" + name.replace("_", "-")
        for name, value in vars(args).items()
        if name not in ("resume", "no_progress") and value != parser.get_default(name)
    ]
    if given:
        parser.error(
            "--resume continues the run with the settings in its checkpoint; "
            f"drop {', '.join(given)}"
        )
    meta = read_meta(args.resume)
    return args.resume, run_agent(
        meta["algo"],
        meta["env_id"],
        run_dir=args.resume,
        tensorboard_dir=meta["tensorboard_dir"],
        progress_bar=not args.no_progress,
        resume=True,
        **meta["options"],
    )


def main(argv: list[str] | None = None) -> int:
    """Train, print the per-segment metrics; returns the exit status (usage errors exit 2).

    Args:
        argv: The arguments without the program name; default ``sys.argv[1:]``.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    run = _start if args.resume is None else _resume
    try:
        save_path, result = run(parser, args)
    except _args.USER_ERRORS as exc:
        _args.fail(parser, exc)
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
