"""A recording wrapper: trial and commit rows, TensorBoard scalars, a progress bar."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

TRIAL_KEYS = (
    "segment",
    "trial",
    "fitness",
    "recall@20",
    "ndcg@20",
    "reference_fitness",
    "params_used",
    "budget_params",
    "user_share",
    "user_size_min",
    "user_size_mean",
    "user_size_max",
    "item_size_min",
    "item_size_mean",
    "item_size_max",
    "policy_ratio",
)
"""Step-info entries kept in each trial row (besides ``episode``, ``step``, ``reward`` and the
step's ``action``, a list as in commit rows)."""


class ScallMonitor(gym.Wrapper):
    """Records what a :class:`~scall_env.env.ScallEnv` reports, episode by episode.

    Trial rows (one per step) and commit rows (segment 0 at reset, then one per advance) are kept
    in :attr:`trials` and :attr:`commits`, each tagged with its episode; the sizes and
    frequencies of each episode's latest commit are kept in :attr:`last_sizes`. Optionally every
    row also goes to TensorBoard (``trial/*`` and ``commit/*`` scalars), a progress bar counts
    steps and ``on_commit`` hears of every commit as it happens. :meth:`advance` commits without
    a search (recorded like any commit); :meth:`get_state` / :meth:`set_state` carry the rows and
    counters through a checkpoint.

    Args:
        env: A ``ScallEnv`` (possibly wrapped).
        writer: TensorBoard writer, or ``None``; :meth:`close` closes it.
        progress_total: Steps for a progress bar, or ``None`` for no bar.
        on_commit: Called with each commit row (``episode`` and the record), or ``None``.
    """

    def __init__(
        self,
        env: gym.Env,
        writer: SummaryWriter | None = None,
        progress_total: int | None = None,
        on_commit: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        super().__init__(env)
        self.writer = writer
        self.on_commit = on_commit
        self.trials: list[dict[str, Any]] = []
        self.commits: list[dict[str, Any]] = []
        self.last_sizes: dict[int, dict[str, np.ndarray]] = {}
        self.episode = -1
        self.steps = 0
        self._bar = tqdm(total=progress_total, unit="step") if progress_total else None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.episode += 1
        if "commit" in info:
            self._record_commit(info["commit"])
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        row = {"episode": self.episode, "step": self.steps, "reward": float(reward)}
        row.update({k: info[k] for k in TRIAL_KEYS if k in info})
        row["action"] = [float(a) for a in np.asarray(action).ravel()]  # as commit rows hold it
        self.trials.append(row)
        if self.writer is not None:
            for key in (
                "reward",
                "fitness",
                "recall@20",
                "ndcg@20",
                "params_used",
                "budget_params",
            ):
                if key in row:
                    self.writer.add_scalar(f"trial/{key}", row[key], self.steps)
        self.steps += 1
        if "commit" in info:
            self._record_commit(info["commit"])
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(segment=row.get("segment"), reward=f"{reward:.2f}")
        return obs, reward, terminated, truncated, info

    def advance(self, action: Any = None, *, skip_search: bool = False) -> dict[str, Any]:
        """Commit the next segment (:meth:`scall_env.env.ScallEnv.advance`) and record it."""
        record = self.env.unwrapped.advance(action, skip_search=skip_search)
        self._record_commit(record)
        return record

    #: The recorded rows and counters: what :meth:`get_state` returns and a checkpoint keeps.
    STATE = ("trials", "commits", "last_sizes", "episode", "steps")

    def get_state(self) -> dict[str, Any]:
        """A copy of the rows and counters (:data:`STATE`), for :meth:`set_state`."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.STATE}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`get_state`'s rows and counters (later TensorBoard steps too)."""
        for name in self.STATE:
            setattr(self, name, copy.deepcopy(state[name]))

    def _record_commit(self, commit: dict[str, Any]) -> None:
        row = {"episode": self.episode, **commit}
        self.commits.append(row)
        if self.on_commit is not None:
            self.on_commit(row)
        sizes = self.env.unwrapped.committed_sizes
        segment = self.env.unwrapped.stream.segment(commit["segment"])
        self.last_sizes[self.episode] = {
            "segment": np.array(commit["segment"]),
            "user_freq": segment.user_freq,
            "item_freq": segment.item_freq,
            "user_sizes": np.asarray(sizes.user_sizes),
            "item_sizes": np.asarray(sizes.item_sizes),
        }
        if self.writer is not None:
            for key in ("recall@20", "ndcg@20", "fitness", "params_used", "budget_params"):
                # x-axis: commits so far, which is the segment index during the first pass
                self.writer.add_scalar(f"commit/{key}", commit[key], len(self.commits) - 1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        if self.writer is not None:
            self.writer.close()  # flushes; its writer thread ends
        super().close()
