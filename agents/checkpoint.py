"""Checkpoints after every committed segment, so that a killed run continues where it stood.

:class:`Checkpointer` writes one file, ``<run_dir>/checkpoint.pt``, through
:func:`scall_env.cache.atomic_path` (a temporary file renamed into place once complete, so a
half-written checkpoint is never read), pickled. It holds:

* ``meta``: the format version, the run's settings and their fingerprint (what
  :func:`agents.settings.run_settings` returns), what :func:`agents.harness.run_agent` was called
  with, the segment, the steps and the seconds the run took so far;
* the agent: an SB3 model as ``model.save`` writes it (parameters, optimisers, counters, the last
  observation, the action space's generator) plus the filled part of its replay buffer (SB3's
  ``save_replay_buffer`` would pickle the whole preallocated buffer: 157 MB on the synthetic env
  and 822 MB on MovieLens at ``buffer_size=100_000``, per segment); a baseline's
  :meth:`~agents.baselines.Baseline.get_state` (parameters, counters, generators);
* the env's search state (:meth:`scall_env.env.ScallEnv.get_state`: the committed model and
  sizes, records, reference fitness, the segment's trials, its generator and segment-0 seed), the
  monitor's rows and steps (:meth:`scall_env.wrappers.ScallMonitor.get_state`), SB3's episode
  statistics;
* every global generator: Python's ``random``, numpy's, torch's (CPU and CUDA).

When it is written: a baseline right after the step that committed; an SB3 agent at the first
rollout start after that step (:class:`CheckpointCallback`). SB3 calls a callback's ``on_step``
before it stores the step's transition and before the updates that follow it, so a checkpoint
taken there would miss both; at the next rollout start both are done and the next action is not
yet drawn. For off-policy agents with ``train_freq=1`` (SCALL's, SAC, TD3, DDPG) that is right
after the commit; on-policy agents (PPO, A2C) checkpoint at the end of the rollout holding the
commit (their rollout buffer is not saved), so they redo at most one rollout. Loading unpickles
the file: read only checkpoints you wrote.
"""

from __future__ import annotations

import io
import pickle
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor

from agents.baselines import Baseline
from scall_env.cache import atomic_path, digest
from scall_env.wrappers import ScallMonitor

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
#: SB3 ``Monitor`` attributes that make its episode statistics (rewards of the current episode).
SB3_MONITOR_STATE = (
    "rewards",
    "episode_returns",
    "episode_lengths",
    "episode_times",
    "total_steps",
)
_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def rng_state() -> dict[str, Any]:
    """The states of Python's, numpy's and torch's global generators."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),  # noqa: NPY002  (SB3 draws from the global generator)
        "torch": torch.get_rng_state(),
        "cuda": cuda,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` returned."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])


def buffer_state(buffer: ReplayBuffer) -> dict[str, Any]:
    """The stored transitions of a replay buffer (only the filled rows) and its position.

    Raises:
        ValueError: A buffer whose observations are not one array (e.g. ``DictReplayBuffer``).
    """
    if not isinstance(buffer.observations, np.ndarray):
        raise ValueError(
            f"checkpoints support replay buffers of array observations, not {type(buffer).__name__}"
        )
    stored = buffer.buffer_size if buffer.full else buffer.pos
    arrays = {
        name: getattr(buffer, name)[:stored].copy()
        for name in _BUFFER_ARRAYS
        if isinstance(getattr(buffer, name, None), np.ndarray)
    }
    return {"pos": buffer.pos, "full": buffer.full, "arrays": arrays}


def load_buffer_state(buffer: ReplayBuffer, state: dict[str, Any]) -> None:
    """Refill a freshly built replay buffer of the same size from :func:`buffer_state`."""
    for name, values in state["arrays"].items():
        getattr(buffer, name)[: len(values)] = values
    buffer.pos, buffer.full = state["pos"], state["full"]


class Checkpointer:
    """Writes the run's checkpoint (see the module docstring) each time :meth:`save` is called.

    Args:
        run_dir: The run's folder.
        meta: What the run is (settings, fingerprint, arguments); stored as ``meta``.
        agent: The agent (an SB3 model or a baseline).
        monitor: The run's monitor (its env is the ``ScallEnv``).
        elapsed_s: Seconds the run took before this process (0 for a new run).
    """

    def __init__(
        self,
        run_dir: Path,
        meta: dict[str, Any],
        agent: BaseAlgorithm | Baseline,
        monitor: ScallMonitor,
        elapsed_s: float = 0.0,
    ) -> None:
        self.path = Path(run_dir) / CHECKPOINT_FILE
        self.meta = meta
        self.agent = agent
        self.monitor = monitor
        self._started = time.perf_counter() - elapsed_s

    @property
    def elapsed_s(self) -> float:
        """Seconds of run time so far, earlier processes included."""
        return time.perf_counter() - self._started

    def save(self) -> None:
        """Write the checkpoint atomically."""
        monitor = self.monitor
        segment = monitor.commits[-1]["segment"] if monitor.commits else None
        meta = {**self.meta, "segment": segment, "steps": monitor.steps}
        payload: dict[str, Any] = {
            "meta": {**meta, "elapsed_s": self.elapsed_s},
            "env": monitor.unwrapped.get_state(),
            "monitor": monitor.get_state(),
        }
        agent = self.agent
        if isinstance(agent, Baseline):
            payload["agent_state"] = agent.get_state()
        else:
            model = io.BytesIO()
            agent.save(model)
            payload["agent"] = model.getvalue()
            buffer = getattr(agent, "replay_buffer", None)
            payload["replay_buffer"] = None if buffer is None else buffer_state(buffer)
            sb3_monitor = agent.get_env().envs[0]
            payload["sb3_monitor"] = {k: getattr(sb3_monitor, k) for k in SB3_MONITOR_STATE}
        payload["rng"] = rng_state()  # last: nothing above draws, but keep it the final word
        with atomic_path(self.path) as tmp, tmp.open("wb") as fh:
            pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)  # 10x torch.save's pace


def _load(path: Path) -> dict[str, Any]:
    """The checkpoint in ``path``; ``ValueError`` when unreadable or of another format."""
    try:
        with path.open("rb") as fh:
            payload = pickle.load(fh)  # noqa: S301  (a checkpoint this package wrote)
        version = payload["meta"].get("version")
    except Exception as exc:  # noqa: BLE001  (any unreadable checkpoint is reported alike)
        raise ValueError(f"{path} is unreadable ({type(exc).__name__}: {exc})") from exc
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has format {version!r}; this version reads {FORMAT_VERSION}")
    return payload


def read_checkpoint(run_dir: Path, settings: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The checkpoint in ``run_dir`` when it belongs to a run made with exactly ``settings``.

    Returns:
        ``(payload, "")``, or ``None`` and why it cannot be used (empty when there is none).
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    why = ""
    if path.exists():
        try:
            payload = _load(path)
        except ValueError as exc:
            why = str(exc)
        else:
            if payload["meta"].get("fingerprint") == digest(settings):
                return payload, ""
            why = f"{path} was made with other settings than the ones asked for now"
    return None, why


def read_meta(run_dir: Path) -> dict[str, Any]:
    """What the run in ``run_dir`` was started with (its checkpoint's ``meta``), to resume it.

    Raises:
        FileNotFoundError: ``run_dir`` holds no checkpoint.
        ValueError: The checkpoint is unreadable or of another format.
    """
    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} holds no {CHECKPOINT_FILE}: nothing to resume (a run writes one after "
            "each committed segment and removes it once finished)"
        )
    return _load(path)["meta"]


def restore_sb3(
    cls: type[BaseAlgorithm], payload: dict[str, Any], env: Monitor, seed: int, device: str
) -> BaseAlgorithm:
    """An SB3 model as it was at the checkpoint, attached to ``env`` (already restored).

    ``seed=None`` while loading keeps SB3 from re-seeding the generators and the env (which
    would reset the env's seeds for its next reset); the model's ``seed`` is set afterwards.
    """
    model = cls.load(
        io.BytesIO(payload["agent"]), env=env, device=device, force_reset=False, seed=None
    )
    model.seed = seed
    if payload["replay_buffer"] is not None:
        load_buffer_state(model.replay_buffer, payload["replay_buffer"])
    for name, value in payload["sb3_monitor"].items():
        setattr(env, name, value)
    return model


class CheckpointCallback(BaseCallback):
    """Calls ``save`` at the first rollout start after a step that committed (see module)."""

    def __init__(self, save: Callable[[], None]) -> None:
        super().__init__()
        self._save = save
        self._due = False

    def _on_step(self) -> bool:
        self._due = self._due or any("commit" in info for info in self.locals["infos"])
        return True

    def _on_rollout_start(self) -> None:
        if self._due:
            self._due = False
            self._save()
