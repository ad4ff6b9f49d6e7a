"""Run one agent over the stream and write what came out: the engine of the two CLIs.

:func:`run_agent` builds the environment (with the agent's sizer, if it has one), the agent, a
:class:`~scall_env.wrappers.ScallMonitor`, attaches the agent's deterministic action as the
commit policy (the paper's protocol), trains, and writes into ``run_dir``:

* ``results.json`` (written last, atomically): settings and their fingerprint (see
  :func:`agents.settings.run_settings`), per-segment committed metrics of the first pass, averages;
* ``segments.csv``: the committed segments (every episode);
* ``trials.csv``: one row per environment step;
* ``sizes_last_segment.npz``: sizes and frequencies of the last committed segment;
* the saved agent (``model.zip`` for SB3 agents, ``model.json`` for baselines);
and TensorBoard logs into ``tensorboard_dir`` when one is given. While it runs, ``checkpoint.pt``
holds its state after the last committed segment (:mod:`agents.checkpoint`; removed once
``results.json`` is written), from which ``run_agent(..., resume=True)`` continues. A run holds
the folder's lock (:mod:`agents.runlock`) throughout: a second process is refused, not mixed in.
:func:`finished_run` reads a run back only when its fingerprint equals the one requested (what
``compare.py --resume`` relies on).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList, StopTrainingOnMaxEpisodes
from stable_baselines3.common.monitor import Monitor
from torch.utils.tensorboard import SummaryWriter

import scall_env  # noqa: F401  (registers the environment ids)
from agents.baselines import BASELINES
from agents.checkpoint import (
    CHECKPOINT_FILE,
    FORMAT_VERSION,
    CheckpointCallback,
    Checkpointer,
    read_checkpoint,
    restore_sb3,
    set_rng_state,
)
from agents.commit import live_policy
from agents.factory import (
    SB3_ALGOS,
    Agent,
    env_overrides,
    make_agent,
    model_filename,
)
from agents.runlock import run_lock
from agents.settings import RunOptions, jsonable, run_settings
from scall_env.cache import atomic_path, digest, write_text_atomic
from scall_env.recsys import flush_denormals_in_thread_pool
from scall_env.wrappers import TRIAL_KEYS, ScallMonitor

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
        wall_time_s: Seconds the run took, to 0.01 s (as ``results.json`` keeps it, so that
            tables made from a run and from its files read back agree).
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

    def __post_init__(self) -> None:
        self.wall_time_s = round(float(self.wall_time_s), 2)


RESULTS_FILE = "results.json"
SIZES_FILE = "sizes_last_segment.npz"


def one_pass_timesteps(env: gym.Env) -> int:
    """The most steps one pass over the stream can take (a pass may end sooner)."""
    return env.unwrapped.max_episode_steps()


def run_agent(
    algo: str,
    env_id: str,
    *,
    run_dir: str | os.PathLike,
    tensorboard_dir: str | os.PathLike | None = None,
    progress_bar: bool = False,
    on_commit: Callable[[dict[str, Any]], None] | None = None,
    resume: bool = False,
    **options: Any,
) -> RunResult:
    """Train (or play, for baselines) one agent on one environment and write the outputs.

    After every committed segment the run writes a checkpoint (:mod:`agents.checkpoint`);
    ``resume=True`` continues from it, and the finished run's ``results.json``,
    ``segments.csv`` and ``trials.csv`` are those of a run never interrupted (wall time aside).

    Args:
        algo: Agent name (see :data:`agents.factory.ALGOS`).
        env_id: A registered environment id.
        run_dir: Output folder (created).
        tensorboard_dir: Folder for TensorBoard logs (the env's scalars under ``scall_env/``,
            SB3's beside them), or ``None`` for none.
        progress_bar: Show a progress bar.
        on_commit: Called with every commit row as it happens (live progress).
        resume: Continue from the checkpoint in ``run_dir``.
        **options: The fields of :class:`RunOptions` (env kwargs, hyper-parameters, seed, ...).

    Raises:
        ValueError: Bad hyper-parameters, environment arguments or ``total_timesteps``, or
            ``resume`` without a usable checkpoint (the message says why).
        RunInUseError: If another live process is running in ``run_dir``.
    """
    opts = RunOptions(**options)
    hyperparams = dict(opts.hyperparams or {})
    settings = run_settings(algo, env_id, **options)
    run_dir = Path(run_dir)
    if resume and not run_dir.is_dir():
        raise ValueError(
            f"cannot resume the run in {run_dir}: it has no checkpoint (the folder does not exist)"
        )
    with run_lock(run_dir):  # one process at a time in a run folder
        checkpoint = None
        if resume:
            checkpoint, why = read_checkpoint(run_dir, settings)
            if checkpoint is None:
                raise ValueError(
                    f"cannot resume the run in {run_dir}: {why or 'it has no checkpoint'}"
                )
        # results.json records what was asked for; the agent's own overrides (a baseline's sizer)
        # follow from algo and hyper-parameters, and their repr would differ from run to run
        asked = {"device": opts.device, **(opts.env_kwargs or {})}
        kwargs = {**asked, **env_overrides(algo, hyperparams)}
        # results.json marks a finished run: an old one must not describe the outputs of this one.
        (run_dir / RESULTS_FILE).unlink(missing_ok=True)
        env = gym.make(env_id, **kwargs)
        if env.unwrapped.config.flush_denormals:  # before the run's first parallel operation
            flush_denormals_in_thread_pool()
        one_pass = opts.total_timesteps is None
        steps = one_pass_timesteps(env) if one_pass else int(opts.total_timesteps)
        if steps < 1 and one_pass:
            raise ValueError(
                f"one pass over this stream takes no steps: it has "
                f"{env.unwrapped.core.n_segments} segment(s), and a search needs two or more"
            )
        if steps < 1:
            raise ValueError(f"total_timesteps must be >= 1, got {opts.total_timesteps}")
        if checkpoint is None:
            (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)
        writer = None
        if tensorboard_dir is not None:  # a resumed run hides what the killed one logged after it
            purge = None if checkpoint is None else checkpoint["meta"]["steps"]
            writer = SummaryWriter(str(Path(tensorboard_dir, "scall_env")), purge_step=purge)
        monitor = ScallMonitor(
            env, writer=writer, progress_total=steps if progress_bar else None, on_commit=on_commit
        )
        agent: Agent | None = None
        try:
            agent = make_agent(
                algo, monitor, hyperparams, seed=opts.seed, device=opts.device,
                tensorboard_log=tensorboard_dir,
            )  # fmt: skip
            if checkpoint is not None:
                agent = _restore(algo, agent, monitor, checkpoint, opts)
            env.unwrapped.set_commit_policy(live_policy(agent))
            meta = {
                "version": FORMAT_VERSION,
                "fingerprint": digest(settings),
                "settings": settings,
                "algo": algo,
                "env_id": env_id,
                "options": jsonable(asdict(opts)),
                "tensorboard_dir": None if tensorboard_dir is None else str(tensorboard_dir),
            }
            elapsed = 0.0 if checkpoint is None else checkpoint["meta"]["elapsed_s"]
            saver = Checkpointer(run_dir, meta, agent, monitor, elapsed)
            remaining = steps - (0 if checkpoint is None else agent.num_timesteps)
            fresh = checkpoint is None
            if algo in BASELINES:
                agent.learn(
                    total_timesteps=remaining,
                    max_episodes=1 if one_pass else None,  # one pass: the first episode
                    commit_only=opts.skips_search(algo),
                    reset_num_timesteps=fresh,
                    on_commit=saver.save,
                )
            else:
                callbacks = [CheckpointCallback(saver.save)]
                if one_pass:
                    callbacks.append(StopTrainingOnMaxEpisodes(max_episodes=1))
                agent.learn(remaining, callback=CallbackList(callbacks), reset_num_timesteps=fresh)
            wall = saver.elapsed_s
        finally:  # TensorBoard writers end with the run, also when it fails
            monitor.close()
            if isinstance(agent, BaseAlgorithm) and hasattr(agent, "_logger"):
                agent.logger.close()  # SB3's, set up by learn()
        agent.save(run_dir / model_filename(algo))

        first_pass = [row for row in monitor.commits if row["episode"] == 0]
        later = [row for row in first_pass if row["segment"] >= 1]
        averages = {
            m: float(np.mean([row[m] for row in later])) if later else float("nan") for m in METRICS
        }
        result = RunResult(
            algo=algo,
            env_id=env_id,
            seed=opts.seed,
            run_dir=run_dir,
            segments=first_pass,
            averages=averages,
            total_timesteps=monitor.steps,
            wall_time_s=wall,
            last_sizes=monitor.last_sizes.get(0, {}),
        )
        write_outputs(result, monitor, asked, hyperparams, settings)
        (run_dir / CHECKPOINT_FILE).unlink(missing_ok=True)  # results.json now marks it finished
        return result


def _restore(
    algo: str, agent: Agent, monitor: ScallMonitor, checkpoint: dict[str, Any], opts: RunOptions
) -> Agent:
    """Put the env, the monitor, the agent and the generators back as they were at the
    checkpoint; returns the agent (an SB3 model is loaded anew)."""
    state = {"state": checkpoint["env"]}
    if algo in BASELINES:
        monitor.reset(options=state)
        agent.set_state(checkpoint["agent_state"])
    else:
        # SB3 puts a Monitor of its own around the env; this one is reset (restored) here, as
        # SB3 does not reset an env whose last observation it has
        sb3_env = Monitor(monitor)
        sb3_env.reset(options=state)
        agent = restore_sb3(SB3_ALGOS[algo], checkpoint, sb3_env, opts.seed, opts.device)
    monitor.set_state(checkpoint["monitor"])
    set_rng_state(checkpoint["rng"])  # last: building and loading above drew from them
    return agent


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
        settings: What the run must have been made with (:func:`agents.settings.run_settings`).

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
        changed = "; ".join(differences(stored_settings, settings))
        return None, f"{path} was made with other settings ({changed})"
    try:
        return load_run(run_dir), ""
    except ValueError as exc:
        return None, str(exc)


def differences(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """``key: old -> new`` for every differing key (nested mappings by dotted key)."""
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changes += differences(a, b, f"{prefix}{key}.")
        elif a != b:
            changes.append(f"{prefix}{key}: {json.dumps(a)} -> {json.dumps(b)}")
    return changes


def write_outputs(
    result: RunResult,
    monitor: ScallMonitor,
    env_kwargs: dict[str, Any],
    hyperparams: dict[str, Any],
    settings: dict[str, Any],
) -> None:
    """Write a finished run's files into ``result.run_dir`` (see the module docstring), with
    ``results.json`` last, so that its presence marks the run finished.

    Args:
        result: The run.
        monitor: The monitor that recorded its commits, trials and sizes.
        env_kwargs: The ``gym.make`` keywords the run was asked for (stored as given).
        hyperparams: The agent's hyper-parameters.
        settings: The run's resolved settings (see :func:`agents.settings.run_settings`); their
            digest is the fingerprint.
    """
    run_dir = result.run_dir
    pd.DataFrame(monitor.commits).to_csv(run_dir / "segments.csv", index=False)
    # a run without trials still gets the columns, so that every trials.csv reads back alike
    columns = None if monitor.trials else ["episode", "step", "reward", *TRIAL_KEYS]
    pd.DataFrame(monitor.trials, columns=columns).to_csv(run_dir / "trials.csv", index=False)
    (run_dir / SIZES_FILE).unlink(missing_ok=True)
    if result.last_sizes:
        with atomic_path(run_dir / SIZES_FILE) as tmp, tmp.open("wb") as fh:
            np.savez_compressed(fh, **result.last_sizes)
    summary = {
        "fingerprint": digest(settings),
        "settings": settings,
        "algo": result.algo,
        "env_id": result.env_id,
        "seed": result.seed,
        "env_kwargs": jsonable(env_kwargs),
        "hyperparams": jsonable(hyperparams),
        "total_timesteps": result.total_timesteps,
        "wall_time_s": result.wall_time_s,
        "segments": jsonable(result.segments),
        "averages": result.averages,
    }
    write_text_atomic(run_dir / RESULTS_FILE, json.dumps(summary, indent=2))
