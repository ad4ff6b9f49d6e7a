"""Time one full pass of the protocol: an agent over a whole stream, as ``scall-train`` runs it.

Each ``--env`` x ``--algo`` pair runs :func:`agents.harness.run_agent` (the agent's
hyper-parameters from ``agents/hyperparams/<algo>.yaml``, the commit policy attached as in the
paper's protocol) in a fresh subprocess (``_common.run_child``) with a fresh temporary cache
folder, so a pass is honest from the start: building the stream, training segment 0 to convergence,
then per segment the search and the commit. ``--cache-dir`` reuses a cache instead (stream and
segment 0 from disk, as in a repeated run). ``--segments K`` times a prefix of the stream: the run
stops once segment ``K`` is committed. ``--commit-only`` lets the baselines that ignore the trials
commit every segment without a search (``run_agent(commit_only=True)``).

Reported per pair (seconds): ``pass_s`` (the whole run, outputs included), ``segment0_s`` (until
segment 0 is committed: stream and segment-0 training), ``commit_at_s`` (the time at which each
segment was committed), ``trials`` and ``trials_per_segment`` (search steps), ``segments``
(segments committed after segment 0), ``complete`` (the pass ran to the end of the stream),
``peak_rss_mb``; and the machine's CPU count and load average before and after. Targets (2 CPU
cores, full passes): ``Scall-ML1M-v0`` with SCALL's agent <= 15 minutes and with the uniform
baseline <= 3 minutes, ``Scall-ML1M-MF-v0`` with SCALL's agent <= 2 minutes.

Example (prints JSON)::

    python benchmarks/bench_run.py --env Scall-ML1M-MF-v0 --algo scall --data-dir ../shared/data \\
        --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from typing import Any

import _common

from scall_env import ENV_KWARGS  # importing scall_env registers the ids

TARGETS: dict[tuple[str, str], float] = {
    ("Scall-ML1M-v0", "scall"): 900.0,
    ("Scall-ML1M-v0", "uniform"): 180.0,
    ("Scall-ML1M-MF-v0", "scall"): 120.0,
}
"""Target seconds of a full pass (env id, agent) on 2 CPU cores."""


class _Enough(Exception):
    """Raised from the commit hook to end a run after its last timed segment."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parses the command line (``None``: ``sys.argv[1:]``)."""
    from agents.factory import ALGOS

    parser = _common.make_parser(
        __doc__, ("data_dir", "seed", "device", "threads", "omp_wait_policy", "json"), device="cpu"
    )
    parser.add_argument(
        "--env",
        action="append",
        choices=list(ENV_KWARGS),
        default=None,
        metavar="ID",
        help="environment id, repeatable (default: Scall-ML1M-MF-v0)",
    )
    parser.add_argument(
        "--algo",
        nargs="+",
        choices=list(ALGOS),
        default=["scall"],
        help="agents to run (default: scall)",
    )
    parser.add_argument(
        "--segments",
        type=_common.int_at_least(1),
        default=None,
        help="stop once segment K is committed (default: the whole stream)",
    )
    parser.add_argument(
        "--cache-dir", default=None, help="cache folder to reuse (default: a fresh one per run)"
    )
    parser.add_argument(
        "--commit-only",
        action="store_true",
        help="baselines that ignore the trials commit without a search (run_agent's commit_only)",
    )
    parser.add_argument(
        "--env-kwargs",
        type=_json_object,
        default={},
        help='extra gym.make keywords as a JSON object, e.g. \'{"search": "fixed"}\'',
    )
    args = parser.parse_args(argv)
    args.env = args.env or ["Scall-ML1M-MF-v0"]
    from agents.settings import resolved_env_kwargs

    for env_id in args.env:  # what every run would refuse, refused before the first starts
        try:
            resolved_env_kwargs(env_id, args.env_kwargs, args.device)
        except (ValueError, TypeError) as exc:
            parser.error(f"--env-kwargs: {exc}")
    return args


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def time_pass(
    env_id: str,
    algo: str,
    *,
    seed: int = 0,
    device: str = "cpu",
    segments: int | None = None,
    cache_dir: str | None = None,
    env_kwargs: dict[str, Any] | None = None,
    commit_only: bool = False,
) -> dict[str, Any]:
    """Runs one agent over the stream (or its first ``segments`` commits) and times it.

    Args:
        env_id: A registered id.
        algo: Agent name (as ``scall-train --algo``).
        seed: Seed of the run.
        device: Torch device of the agent and the env.
        segments: Stop once this segment is committed (``None``: the whole pass).
        cache_dir: Cache folder to use (``None``: a fresh temporary one, removed afterwards).
        env_kwargs: Other ``gym.make`` keywords (``data_dir``, ...).
        commit_only: Let a baseline that ignores the trials commit without a search.

    Returns:
        JSON-ready timings (see the module docstring).
    """
    from agents.factory import load_hyperparams
    from agents.harness import run_agent

    work = tempfile.mkdtemp(prefix="scall-bench-run-")
    commits: list[dict[str, Any]] = []
    start = time.perf_counter()

    def on_commit(row: dict[str, Any]) -> None:
        if row["episode"] != 0:  # SB3 resets the env after the pass: segment 0 of the next
            return
        at_s = time.perf_counter() - start
        commits.append({"segment": int(row["segment"]), "at_s": at_s, "trials": int(row["trials"])})
        if segments is not None and row["segment"] >= segments:
            raise _Enough

    complete = True
    try:
        run_agent(
            algo,
            env_id,
            run_dir=f"{work}/run",
            on_commit=on_commit,
            env_kwargs={"cache_dir": cache_dir or f"{work}/cache", **(env_kwargs or {})},
            hyperparams=load_hyperparams(algo, env_id),
            seed=seed,
            device=device,
            commit_only=commit_only,
        )
    except _Enough:
        complete = False
    finally:
        pass_s = time.perf_counter() - start
        shutil.rmtree(work, ignore_errors=True)
    trials = [commit["trials"] for commit in commits[1:]]
    report = {
        "env": env_id,
        "algo": algo,
        "seed": seed,
        "commit_only": commit_only,
        "pass_s": pass_s,
        "complete": complete,
        "segments": len(trials),
        "segment0_s": commits[0]["at_s"],
        "commit_at_s": [commit["at_s"] for commit in commits],
        "trials": sum(trials),
        "trials_per_segment": trials,
    }
    target = TARGETS.get((env_id, algo))
    if complete and target is not None:
        report.update(target_s=target, target_met=bool(pass_s <= target))
    return report


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Times every requested pair in a fresh subprocess each.

    Args:
        args: Parsed arguments.

    Returns:
        ``{"runs": {"<env>/<algo>": result}, ...}`` with the machine's CPU count and load
        averages; a failed run's result holds ``error`` (the tail of its stderr).
    """
    env = _common.child_env(args.omp_wait_policy, args.threads)
    load_before = _common.load_average()
    env_kwargs = dict(args.env_kwargs)
    if args.data_dir is not None:
        env_kwargs["data_dir"] = args.data_dir
    runs: dict[str, Any] = {}
    for env_id in args.env:
        for algo in args.algo:
            kwargs = {
                "env_id": env_id,
                "algo": algo,
                "seed": args.seed,
                "device": args.device,
                "segments": args.segments,
                "cache_dir": args.cache_dir,
                "env_kwargs": env_kwargs,
                "commit_only": args.commit_only,
            }
            try:
                child = _common.run_child(time_pass, kwargs, env=env)
                runs[f"{env_id}/{algo}"] = {**child.value, "peak_rss_mb": child.peak_rss_mb}
            except _common.ChildError as exc:
                runs[f"{env_id}/{algo}"] = {"env": env_id, "algo": algo, "error": str(exc)}
    info = _common.machine()
    return {
        "runs": runs,
        "cpus": info["cpus"],
        "cpus_usable": info["cpus_usable"],
        "loadavg_before": load_before,
        "loadavg_after": info["loadavg"],
    }


def print_table(report: dict[str, Any]) -> None:
    """Prints one row per run."""
    print(f"{'run':<32} {'pass':>9} {'seg 0':>8} {'segments':>8} {'trials':>6}  target")
    for name, r in report["runs"].items():
        if "error" in r:
            print(f"{name:<32} FAILED: {r['error'].strip().splitlines()[-1]}")
            continue
        target = r.get("target_s")
        verdict = "-" if target is None else f"{'ok' if r['target_met'] else 'MISSED'} ({target} s)"
        print(
            f"{name:<32} {r['pass_s']:>8.1f}s {r['segment0_s']:>7.1f}s {r['segments']:>8} "
            f"{r['trials']:>6}  {verdict}"
        )
    print(
        f"cpus {report['cpus']}, load average before {report['loadavg_before']}, "
        f"after {report['loadavg_after']}"
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints the result (``argv`` ``None``: ``sys.argv[1:]``).

    Raises:
        SystemExit: Status 1 after the report when a run failed.
    """
    args = parse_args(argv)
    report = run_benchmark(args)
    _common.print_report(report, as_json=args.json, table=print_table)
    if any("error" in run for run in report["runs"].values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
