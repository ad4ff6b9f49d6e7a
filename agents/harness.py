"""Run one agent over the stream and write what came out: the engine of the two CLIs.

:func:`run_agent` builds the environment (with the agent's sizer, if it has one), the agent, a
:class:`~scall_env.wrappers.ScallMonitor`, attaches the agent's deterministic action as the
commit policy (the paper's protocol), trains, and writes into ``run_dir``:

* ``results.json`` (written last, atomically): settings and their fingerprint (see
  :func:`run_settings`), per-segment committed metrics of the first pass, averages;
* ``segments.csv``: the committed segments (every episode);
* ``trials.csv``: one row per environment step;
* ``sizes_last_segment.npz``: sizes and frequencies of the last committed segment;
* the saved agent (``model.zip`` for SB3 agents, ``model.json`` for baselines);
and TensorBoard logs into ``tensorboard_dir`` when one is given. :func:`finished_run` reads a run
back only when its fingerprint equals the one requested (what ``compare.py --resume`` relies on).
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import stable_baselines3
import torch
from stable_baselines3.common.callbacks import StopTrainingOnMaxEpisodes
from torch.utils.tensorboard import SummaryWriter

import scall_env  # noqa: F401  (registers the environment ids)
from agents.baselines import BASELINES
from agents.commit import live_policy
from agents.factory import check_algo, env_overrides, make_agent, model_filename
from scall_env.cache import atomic_path, digest
from scall_env.config import EnvConfig
from scall_env.recsys import resolve_device
from scall_env.registration import ENTRY_POINT
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


RESULTS_FILE = "results.json"
SIZES_FILE = "sizes_last_segment.npz"
#: Env keywords that change where intermediate results are kept, never what a run produces.
NOT_IN_FINGERPRINT = ("cache_dir", "use_cache", "commit_policy")


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, torch.device | os.PathLike):
        return str(value)
    return repr(value)


def resolved_env_kwargs(
    env_id: str, env_kwargs: dict[str, Any] | None = None, device: str = "auto"
) -> dict[str, Any]:
    """Every keyword the env is built with: registered defaults, ``device``, then ``env_kwargs``.

    For the SCALL ids the keywords go through :class:`~scall_env.config.EnvConfig`, so defaults
    are filled in and values normalised (``"auto"`` becomes the device it resolves to).

    Raises:
        ValueError: An unregistered ``env_id`` or a setting the env refuses.
        TypeError: A keyword the env does not take.
    """
    try:
        spec = gym.spec(env_id)
    except gym.error.Error as exc:
        raise ValueError(f"unknown env {env_id!r}: {exc}") from exc
    merged = {**spec.kwargs, "device": device, **(env_kwargs or {})}
    if spec.entry_point != ENTRY_POINT:
        return merged
    unknown = sorted(set(merged) - set(EnvConfig.keywords()))
    if unknown:
        raise TypeError(
            f"unknown {env_id} arguments {unknown}; allowed: {', '.join(EnvConfig.keywords())}"
        )
    config = EnvConfig(**merged)
    return {name: getattr(config, name) for name in EnvConfig.keywords()}


def run_settings(
    algo: str,
    env_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    hyperparams: dict[str, Any] | None = None,
    seed: int = 0,
    total_timesteps: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Everything that determines what a run produces, as JSON values.

    Agent, env id, every env keyword (:func:`resolved_env_kwargs`, less the cache location),
    hyper-parameters, seed, requested steps (``None``: one pass), the agent's resolved device and
    the versions of scall, torch and Stable-Baselines3. Its :func:`~scall_env.cache.digest` is
    the run's fingerprint.

    Raises:
        ValueError, TypeError: As :func:`resolved_env_kwargs`, or an unknown ``algo``.
    """
    check_algo(algo)
    env = resolved_env_kwargs(env_id, env_kwargs, device)
    return _jsonable(
        {
            "algo": algo,
            "env_id": env_id,
            "env_kwargs": {k: v for k, v in env.items() if k not in NOT_IN_FINGERPRINT},
            "hyperparams": hyperparams or {},
            "seed": seed,
            "total_timesteps": total_timesteps,
            "device": resolve_device(device).type,
            "versions": {
                "scall": version("scall"),
                "torch": torch.__version__,
                "stable_baselines3": stable_baselines3.__version__,
            },
        }
    )


def one_pass_timesteps(env: gym.Env) -> int:
    """The most steps one pass over the stream can take (a pass may end sooner)."""
    return env.unwrapped.max_episode_steps()


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
    settings = run_settings(
        algo,
        env_id,
        env_kwargs=env_kwargs,
        hyperparams=hyperparams,
        seed=seed,
        total_timesteps=total_timesteps,
        device=device,
    )
    kwargs = {"device": device, **(env_kwargs or {}), **env_overrides(algo, hyperparams)}
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    # results.json marks a finished run: an old one must not describe the outputs of this one.
    (run_dir / RESULTS_FILE).unlink(missing_ok=True)
    env = gym.make(env_id, **kwargs)
    one_pass = total_timesteps is None
    steps = one_pass_timesteps(env) if one_pass else int(total_timesteps)
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
    if not one_pass:
        agent.learn(total_timesteps=steps)
    elif algo in BASELINES:
        agent.learn(total_timesteps=steps, max_episodes=1)
    else:  # one pass ends when the first episode terminates, whatever its length
        agent.learn(total_timesteps=steps, callback=StopTrainingOnMaxEpisodes(max_episodes=1))
    steps = monitor.steps
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
    _write_outputs(result, monitor, kwargs, hyperparams, settings)
    return result


def load_run(run_dir: str | os.PathLike) -> RunResult:
    """Read a finished run back from the ``results.json`` (and sizes) that :func:`run_agent` wrote.

    Raises:
        FileNotFoundError: ``run_dir`` holds no ``results.json``.
        ValueError: ``results.json`` or the sizes file is unreadable or incomplete (the message
            names the file).
    """
    run_dir = Path(run_dir)
    summary = _read_results(run_dir / RESULTS_FILE)
    sizes_file = run_dir / SIZES_FILE
    last_sizes: dict[str, np.ndarray] = {}
    if sizes_file.exists():
        try:
            with np.load(sizes_file, allow_pickle=False) as npz:
                last_sizes = {key: npz[key] for key in npz.files}
        except (OSError, EOFError, ValueError, zipfile.BadZipFile) as exc:
            raise ValueError(f"{sizes_file} is unreadable ({exc})") from exc
    try:
        return RunResult(
            algo=str(summary["algo"]),
            env_id=str(summary["env_id"]),
            seed=int(summary["seed"]),
            run_dir=run_dir,
            segments=list(summary["segments"]),
            averages=dict(summary["averages"]),
            total_timesteps=int(summary["total_timesteps"]),
            wall_time_s=float(summary["wall_time_s"]),
            last_sizes=last_sizes,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{run_dir / RESULTS_FILE} is incomplete ({exc!r})") from exc


def _read_results(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; ``ValueError`` naming the file when it is not one."""
    try:
        summary = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is unreadable ({exc})") from exc
    if not isinstance(summary, dict):
        raise ValueError(f"{path} is unreadable (not a JSON object)")
    return summary


def finished_run(
    run_dir: str | os.PathLike, settings: dict[str, Any]
) -> tuple[RunResult | None, str]:
    """The run in ``run_dir`` when it was made with exactly ``settings``, else why not.

    Args:
        run_dir: A run folder written by :func:`run_agent`.
        settings: What the run must have been made with (:func:`run_settings`).

    Returns:
        ``(result, "")`` for a finished, readable run with the same fingerprint; otherwise
        ``None`` and a note saying why it must run (empty when there is no finished run).
    """
    path = Path(run_dir) / RESULTS_FILE
    if not path.exists():
        return None, ""
    try:
        stored = _read_results(path)
    except ValueError as exc:
        return None, str(exc)
    stored_settings = stored.get("settings")
    if not isinstance(stored_settings, dict) or stored.get("fingerprint") != digest(
        stored_settings
    ):
        return None, f"{path} has no valid settings fingerprint (an older or damaged file)"
    if stored["fingerprint"] != digest(settings):
        changed = "; ".join(_differences(stored_settings, settings))
        return None, f"{path} was made with other settings ({changed})"
    try:
        return load_run(run_dir), ""
    except ValueError as exc:
        return None, str(exc)


def _differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every differing key (nested mappings by dotted key)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return changes


def _write_outputs(
    result: RunResult,
    monitor: ScallMonitor,
    env_kwargs: dict[str, Any],
    hyperparams: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    run_dir = result.run_dir
    pd.DataFrame(monitor.commits).to_csv(run_dir / "segments.csv", index=False)
    pd.DataFrame(monitor.trials).to_csv(run_dir / "trials.csv", index=False)
    (run_dir / SIZES_FILE).unlink(missing_ok=True)
    if result.last_sizes:
        with atomic_path(run_dir / SIZES_FILE) as tmp, tmp.open("wb") as fh:
            np.savez(fh, **result.last_sizes)
    summary = {
        "fingerprint": digest(settings),
        "settings": settings,
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
    with atomic_path(run_dir / RESULTS_FILE) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
