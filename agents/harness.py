"""Run one agent over the stream and write what came out: the engine of the two CLIs.

:func:`run_agent` builds the environment (with the agent's sizer, if it has one), the agent, a
:class:`~scall_env.wrappers.ScallMonitor`, attaches the agent's deterministic action as the
commit policy (the paper's protocol), trains, and writes into ``run_dir``:

* ``results.json``: settings, per-segment committed metrics of the first pass, averages;
* ``segments.csv``: the committed segments (every episode);
* ``trials.csv``: one row per environment step;
* ``sizes_last_segment.npz``: sizes and frequencies of the last committed segment;
* the saved agent (``model.zip`` for SB3 agents, ``model.json`` for baselines);
and TensorBoard logs into ``tensorboard_dir`` when one is given.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from torch.utils.tensorboard import SummaryWriter

import scall_env  # noqa: F401  (registers the environment ids)
from agents.commit import live_policy
from agents.factory import env_overrides, make_agent, model_filename
from scall_env.wrappers import ScallMonitor

METRICS = ("recall@20", "ndcg@20", "recall@10", "ndcg@10", "recall@5", "ndcg@5")
"""Committed-segment metrics averaged in the results (segments ``t >= 1``, as in the paper)."""


@dataclass
class RunResult:
    """What one run produced.

    Attributes:
        algo: Agent name.
        env_id: Environment id.
        seed: Seed.
        run_dir: Folder holding the outputs.
        segments: Committed-segment records of the first pass (segment 0 first).
        averages: Mean of :data:`METRICS` over segments ``t >= 1`` of the first pass.
        total_timesteps: Environment steps taken.
        wall_time_s: Seconds the run took.
        last_sizes: Sizes and frequencies of the first pass's last committed segment.
    """

    algo: str
    env_id: str
    seed: int
    run_dir: Path
    segments: list[dict[str, Any]]
    averages: dict[str, float]
    total_timesteps: int
    wall_time_s: float
    last_sizes: dict[str, np.ndarray] = field(default_factory=dict)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return repr(value)


def one_pass_timesteps(env: gym.Env) -> int:
    """Steps of one pass over the stream: ``search_steps * (n_segments - 1)``."""
    inner = env.unwrapped
    return inner.search_steps * (len(inner.stream) - 1)


def run_agent(
    algo: str,
    env_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    seed: int = 0,
    total_timesteps: int | None = None,
    device: str = "auto",
    run_dir: str | os.PathLike,
    tensorboard_dir: str | os.PathLike | None = None,
    progress_bar: bool = False,
) -> RunResult:
    """Train (or play, for baselines) one agent on one environment and write the outputs.

    Args:
        algo: Agent name (see :data:`agents.factory.ALGOS`).
        env_id: A registered environment id.
        env_kwargs: Keyword arguments of ``gym.make`` (``device`` defaults to ``device``).
        hyperparams: Agent constructor arguments (see :func:`agents.factory.load_hyperparams`).
        seed: Seed of the environment and the agent.
        total_timesteps: Steps to take; default one pass over the stream.
        device: Torch device of the agent and, unless ``env_kwargs`` says otherwise, the env.
        run_dir: Output folder (created).
        tensorboard_dir: Folder for TensorBoard logs (the env's scalars under ``scall_env/``,
            SB3's beside them), or ``None`` for none.
        progress_bar: Show a progress bar.

    Raises:
        ValueError: Bad hyper-parameters, environment arguments or ``total_timesteps``.
    """
    hyperparams = dict(hyperparams or {})
    kwargs = {"device": device, **(env_kwargs or {}), **env_overrides(algo, hyperparams)}
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    env = gym.make(env_id, **kwargs)
    steps = one_pass_timesteps(env) if total_timesteps is None else int(total_timesteps)
    if steps < 1:
        raise ValueError(f"total_timesteps must be >= 1, got {total_timesteps}")
    writer = (
        None if tensorboard_dir is None else SummaryWriter(str(Path(tensorboard_dir, "scall_env")))
    )
    monitor = ScallMonitor(env, writer=writer, progress_total=steps if progress_bar else None)
    agent = make_agent(
        algo,
        monitor,
        hyperparams,
        seed=seed,
        device=device,
        tensorboard_log=tensorboard_dir,
    )
    env.unwrapped.set_commit_policy(live_policy(agent))
    start = time.perf_counter()
    agent.learn(total_timesteps=steps)
    wall = time.perf_counter() - start
    monitor.close()
    agent.save(run_dir / model_filename(algo))

    first_pass = [row for row in monitor.commits if row["episode"] == 0]
    later = [row for row in first_pass if row["segment"] >= 1]
    averages = {
        m: float(np.mean([row[m] for row in later])) if later else float("nan") for m in METRICS
    }
    result = RunResult(
        algo=algo,
        env_id=env_id,
        seed=seed,
        run_dir=run_dir,
        segments=first_pass,
        averages=averages,
        total_timesteps=steps,
        wall_time_s=wall,
        last_sizes=monitor.last_sizes.get(0, {}),
    )
    _write_outputs(result, monitor, kwargs, hyperparams)
    return result


def load_run(run_dir: str | os.PathLike) -> RunResult:
    """Read a finished run back from the ``results.json`` (and sizes) that :func:`run_agent` wrote.

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``results.json``.
    """
    run_dir = Path(run_dir)
    summary = json.loads((run_dir / "results.json").read_text())
    sizes_file = run_dir / "sizes_last_segment.npz"
    last_sizes: dict[str, np.ndarray] = {}
    if sizes_file.exists():
        with np.load(sizes_file) as npz:
            last_sizes = {key: npz[key] for key in npz.files}
    return RunResult(
        algo=summary["algo"],
        env_id=summary["env_id"],
        seed=summary["seed"],
        run_dir=run_dir,
        segments=summary["segments"],
        averages=summary["averages"],
        total_timesteps=summary["total_timesteps"],
        wall_time_s=summary["wall_time_s"],
        last_sizes=last_sizes,
    )


def _write_outputs(
    result: RunResult,
    monitor: ScallMonitor,
    env_kwargs: dict[str, Any],
    hyperparams: dict[str, Any],
) -> None:
    run_dir = result.run_dir
    pd.DataFrame(monitor.commits).to_csv(run_dir / "segments.csv", index=False)
    pd.DataFrame(monitor.trials).to_csv(run_dir / "trials.csv", index=False)
    if result.last_sizes:
        np.savez(run_dir / "sizes_last_segment.npz", **result.last_sizes)
    summary = {
        "algo": result.algo,
        "env_id": result.env_id,
        "seed": result.seed,
        "env_kwargs": _jsonable(env_kwargs),
        "hyperparams": _jsonable(hyperparams),
        "total_timesteps": result.total_timesteps,
        "wall_time_s": round(result.wall_time_s, 2),
        "segments": _jsonable(result.segments),
        "averages": result.averages,
    }
    (run_dir / "results.json").write_text(json.dumps(summary, indent=2))
