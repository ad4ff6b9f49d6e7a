"""What determines a run: its options, its resolved env arguments, and the settings whose digest is
its fingerprint.

:func:`run_settings` is the one place where a run's inputs are checked before anything runs (env
arguments, hyper-parameter names and baseline values, env arguments the agent sets itself, a
commit-only step budget) and turned into the JSON settings that ``results.json`` and checkpoints
store; ``scall-compare`` calls it for every run before the first starts, so ``--resume`` can tell a
finished run from one to make.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from importlib.metadata import version
from typing import Any

import gymnasium as gym
import numpy as np
import stable_baselines3
import torch

from agents.baselines import BASELINES, check_commit_steps
from agents.factory import check_hyperparams, env_overrides
from scall_env.config import EnvConfig
from scall_env.recsys import resolve_device
from scall_env.registration import ENTRY_POINT
from scall_env.search import constant_policy_trials

#: Env keywords that change where intermediate results are kept, never what a run produces.
NOT_IN_FINGERPRINT = ("cache_dir", "use_cache", "commit_policy")
#: Env keywords left out of the fingerprint at these values: runs made before the keyword existed
#: kept denormals, which changes a run only within float rounding (``bench_denormals.py``), and
#: keep their fingerprints; ``flush_denormals=False`` is a run of its own.
NOT_IN_FINGERPRINT_AT = {"flush_denormals": True}


def jsonable(value: Any) -> Any:
    """``value`` as JSON values: numpy scalars as Python ones, devices and paths as text, an object
    (a sizer, say) as ``Class(field=value, ...)`` so that its fingerprint is the same in every
    process, anything else as its repr."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, torch.device | os.PathLike):
        return str(value)
    if hasattr(value, "__dict__") and not callable(value):  # by class and fields, not address
        fields_ = ", ".join(f"{k}={jsonable(v)!r}" for k, v in vars(value).items())
        return f"{type(value).__name__}({fields_})"
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


@dataclass(frozen=True)
class RunOptions:
    """What decides a run's outputs besides the agent and the env id: the keyword arguments that
    :func:`agents.harness.run_agent` and :func:`run_settings` take (``**options``).

    Attributes:
        env_kwargs: Keyword arguments of ``gym.make`` (``device`` defaults to ``device``).
        hyperparams: Agent constructor arguments (see :func:`agents.factory.load_hyperparams`).
        seed: Seed of the environment and the agent.
        total_timesteps: Steps to take; ``None``: one pass over the stream.
        device: Torch device of the agent and, unless ``env_kwargs`` says otherwise, the env.
        commit_only: Let the agents that do not use the search's trials
            (:attr:`agents.baselines.Baseline.commit_only`) commit every segment without them;
            other agents search as always.
    """

    env_kwargs: dict[str, Any] | None = None
    hyperparams: dict[str, Any] | None = None
    seed: int = 0
    total_timesteps: int | None = None
    device: str = "auto"
    commit_only: bool = False

    def skips_search(self, algo: str) -> bool:
        """Whether ``algo`` commits without searching under these options."""
        return self.commit_only and algo in BASELINES and BASELINES[algo].commit_only


def run_settings(algo: str, env_id: str, **options: Any) -> dict[str, Any]:
    """Everything that determines what a run produces, as JSON values.

    Agent, env id, every env keyword (:func:`resolved_env_kwargs`, less the cache location),
    hyper-parameters, seed, requested steps (``None``: one pass), the agent's resolved device,
    ``commit_only`` when the agent skips the search, ``bounded_progress`` when the bounded
    observation runs under adaptive search, and the versions of scall, torch and
    Stable-Baselines3. Its :func:`~scall_env.cache.digest` is the run's fingerprint.

    Args:
        algo: Agent name.
        env_id: A registered environment id.
        **options: The fields of :class:`RunOptions`.

    Raises:
        ValueError, TypeError: As :func:`resolved_env_kwargs`, an unknown ``algo``, option or
            hyper-parameter name, a bad baseline hyper-parameter, an env keyword that the agent
            sets itself (a search agent's ``commit``, a baseline's ``sizer``) given another
            value, or steps that are no whole number of commits for an agent that skips the
            search.
    """
    opts = RunOptions(**options)
    check_hyperparams(algo, opts.hyperparams or {})
    _check_env_overrides(algo, opts)
    env = resolved_env_kwargs(env_id, opts.env_kwargs, opts.device)
    settings = {
        "algo": algo,
        "env_id": env_id,
        "env_kwargs": {
            k: v
            for k, v in env.items()
            if k not in NOT_IN_FINGERPRINT and (k, v) not in NOT_IN_FINGERPRINT_AT.items()
        },
        "hyperparams": opts.hyperparams or {},
        "seed": opts.seed,
        "total_timesteps": opts.total_timesteps,
        "device": resolve_device(opts.device).type,
        "versions": {
            "scall": version("scall"),
            "torch": torch.__version__,
            "stable_baselines3": stable_baselines3.__version__,
        },
    }
    # each entry below appears only when it applies: other runs keep the fingerprints they had
    if opts.skips_search(algo):
        if opts.total_timesteps is not None:
            check_commit_steps(opts.total_timesteps, constant_policy_trials(EnvConfig(**env)))
        settings["commit_only"] = True
    if env.get("observation") == "bounded" and env.get("search") == "adaptive":
        # its progress entry counts trials over search_max_steps since 2026-11-30 (over
        # search_steps before): runs from before are not this run
        settings["bounded_progress"] = "max_trials"
    return jsonable(settings)


def _check_env_overrides(algo: str, opts: RunOptions) -> None:
    """Refuse an env keyword the agent sets itself (:func:`agents.factory.env_overrides`) that the
    user asked for with another value (the default, which resolved settings hold, is no request)."""
    asked = opts.env_kwargs or {}
    defaults = {f.name: f.default for f in fields(EnvConfig)}
    clash = {
        key: value
        for key, value in env_overrides(algo, opts.hyperparams or {}).items()
        # compared as the settings record them: two UniformSizer() are the same request
        if jsonable(asked.get(key, defaults[key])) not in (jsonable(value), jsonable(defaults[key]))
    }
    if clash:
        shown = ", ".join(f"{k}={jsonable(v)!r}" for k, v in clash.items())
        raise ValueError(
            f"{algo} sets the env keyword(s) {', '.join(clash)} itself ({shown}); "
            "leave them out of env_kwargs"
        )
