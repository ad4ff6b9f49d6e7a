"""Flushing denormal floats while training: what it saves and how far it moves the results.

Runs the first ``--segments`` commits of one baseline pass (default: the frequency rule on
``Scall-ML1M-v0``, whose wide sizes for popular entities drive BPR margins past -87, where
``sigmoid(margin)`` is a float32 denormal) twice, each in a fresh process and a fresh cache
folder: with ``flush_denormals=True`` (the default) and ``False``. Usage::

    python benchmarks/bench_denormals.py --data-dir ../shared/data --json

Reported per mode: ``segment0_s`` (reset: stream and segment-0 training), ``commit_s`` (each
commit's seconds), ``commits_s`` (their sum), ``denormal_share`` (per commit, the mean share of
denormal entries in the gradient entering LightGCN's backward propagation, counted by a wrapper
that runs in both modes) and per commit the metrics and a SHA-256 of the committed model's
weights. Then ``speedup`` (``commits_s`` kept / flushed, measured in the same run), per commit
``weights_max_abs_diff`` and ``metrics_max_abs_diff`` between the two modes, and ``identical``
(every commit's weights and metrics equal, bit for bit).
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
from _common import child_env, int_at_least, machine, make_parser, run_child

MODES = {"flushed": True, "kept": False}
"""Report key -> ``flush_denormals``."""


def commits(
    env_id: str,
    algo: str,
    segments: int,
    flush: bool,
    data_dir: str | None,
    seed: int,
    weights_dir: str,
) -> dict[str, Any]:
    """Child: reset, then commit ``segments`` segments with ``algo``'s sizes (no search).

    The committed weights go to ``weights_dir/<flush>-<commit>.npz`` for the parent to compare.

    Returns:
        The timings, denormal shares, hashes and metrics of one mode (see the module docstring).
    """
    import gymnasium as gym
    import torch

    import scall_env  # noqa: F401  (registers the ids)
    from agents.factory import env_overrides
    from scall_env.recsys import flush_denormals_in_thread_pool
    from scall_env.recsys.propagation import PropagationPlan

    shares: list[float] = []
    backward = PropagationPlan.backward_product

    def counting(plan: PropagationPlan, grad: torch.Tensor, active_only: bool) -> torch.Tensor:
        tiny = (grad != 0) & (grad.abs() < torch.finfo(grad.dtype).tiny)
        shares.append(float(tiny.float().mean()))
        return backward(plan, grad, active_only)

    with (
        mock.patch.object(PropagationPlan, "backward_product", counting),
        tempfile.TemporaryDirectory() as cache,
    ):
        env = gym.make(
            env_id,
            data_dir=data_dir,
            cache_dir=cache,
            flush_denormals=flush,
            **env_overrides(algo, {}),
        )
        if flush:  # as run_agent does: with --threads > 1 the pool's threads flush too
            flush_denormals_in_thread_pool()
        start = time.perf_counter()
        env.reset(seed=seed)
        report: dict[str, Any] = {"segment0_s": time.perf_counter() - start}
        action = np.zeros(env.action_space.shape, dtype=np.float32)
        for key in ("commit_s", "denormal_share", "weights_sha256", "metrics"):
            report[key] = []
        core = env.unwrapped.core
        for commit in range(segments):
            shares.clear()
            start = time.perf_counter()
            record = env.unwrapped.advance(action, skip_search=True)
            report["commit_s"].append(time.perf_counter() - start)
            report["denormal_share"].append(float(np.mean(shares)) if shares else 0.0)
            weights = {
                name: value.detach().cpu().contiguous().numpy()
                for name, value in sorted(core.model.state_dict().items())
            }
            np.savez(Path(weights_dir, f"{flush}-{commit}.npz"), **weights)
            digest = hashlib.sha256()
            for name, value in weights.items():
                digest.update(name.encode())
                digest.update(value.tobytes())
            report["weights_sha256"].append(digest.hexdigest())
            report["metrics"].append({k: v for k, v in record.items() if isinstance(v, float)})
        env.close()
    report["commits_s"] = sum(report["commit_s"])
    return report


def _max_abs_diff(first: Path, second: Path) -> float:
    """Largest absolute difference between the same-named arrays of two ``.npz`` files."""
    with np.load(first) as a, np.load(second) as b:
        return max(float(np.abs(a[name] - b[name]).max(initial=0.0)) for name in a.files)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Runs both modes and prints the report.

    Args:
        argv: Command-line arguments (``None``: ``sys.argv``).

    Returns:
        The report that was printed.
    """
    parser = make_parser(
        __doc__, ("data_dir", "seed", "threads", "omp_wait_policy", "json"), threads=1
    )
    parser.add_argument("--env", default="Scall-ML1M-v0", help="env id (default: Scall-ML1M-v0)")
    parser.add_argument(
        "--algo",
        default="frequency",
        help="a baseline whose sizer the env uses (default: frequency)",
    )
    parser.add_argument(
        "--segments",
        type=int_at_least(1),
        default=5,
        help="segments committed after reset (default: 5)",
    )
    args = parser.parse_args(argv)
    from agents.factory import env_overrides  # (this process stays lean until the arguments hold)
    from scall_env import ENV_KWARGS

    if args.env not in ENV_KWARGS:
        parser.error(f"unknown --env {args.env!r}; choose from {', '.join(ENV_KWARGS)}")
    try:
        sized = "sizer" in env_overrides(args.algo, {})
    except ValueError as exc:
        parser.error(f"--algo: {exc}")
    if not sized:
        parser.error(f"--algo {args.algo!r} has no sizer of its own; use uniform or frequency")
    report: dict[str, Any] = {"env": args.env, "algo": args.algo, "machine_before": machine()}
    env = child_env(args.omp_wait_policy, args.threads)
    with tempfile.TemporaryDirectory() as weights_dir:
        for mode, flush in MODES.items():
            kwargs = {
                "env_id": args.env,
                "algo": args.algo,
                "segments": args.segments,
                "flush": flush,
                "data_dir": args.data_dir,
                "seed": args.seed,
                "weights_dir": weights_dir,
            }
            report[mode] = run_child(commits, kwargs, env=env).value
        report["weights_max_abs_diff"] = [
            _max_abs_diff(Path(weights_dir, f"True-{i}.npz"), Path(weights_dir, f"False-{i}.npz"))
            for i in range(args.segments)
        ]
    flushed, kept = report["flushed"], report["kept"]
    report["speedup"] = kept["commits_s"] / flushed["commits_s"]
    report["metrics_max_abs_diff"] = [
        max(abs(a[key] - b[key]) for key in a)
        for a, b in zip(flushed["metrics"], kept["metrics"], strict=True)
    ]
    report["identical"] = all(flushed[key] == kept[key] for key in ("weights_sha256", "metrics"))
    report["machine_after"] = machine()

    def table(result: dict[str, Any]) -> None:
        print(f"{result['env']} with {result['algo']}'s sizes, commits after segment 0:")
        for mode in MODES:
            times = ", ".join(f"{s:.1f}" for s in result[mode]["commit_s"])
            print(f"  {mode:8s} {result[mode]['commits_s']:8.1f} s  ({times})")
        print(f"  speedup {result['speedup']:.2f}, identical weights and metrics: "
              f"{result['identical']}")  # fmt: skip
        diffs = zip(result["weights_max_abs_diff"], result["metrics_max_abs_diff"], strict=True)
        for commit, (weights, metrics) in enumerate(diffs, start=1):
            print(
                f"  commit {commit}: weights differ by {weights:.3g} at most, metrics {metrics:.3g}"
            )

    if args.json:  # not rounded: the differences lie far below the 4 decimals of print_report
        print(json.dumps(report, indent=2))
    else:
        table(report)
    return report


if __name__ == "__main__":
    main()
