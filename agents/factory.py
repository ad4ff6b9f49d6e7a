"""One way to build, load and configure every agent: SCALL's SAC, SB3 algorithms, baselines and
search agents.

Hyper-parameters live in YAML, one file per algorithm (``agents/hyperparams/<algo>.yaml``), with one
section per environment id and a ``default`` section, as in RL Baselines3 Zoo. The search agents
(:mod:`agents.search_agents`) are baselines to everything else: importing this module adds them to
:data:`agents.baselines.BASELINES`, so the harness plays them for one pass like the baselines and
:meth:`Baseline.load <agents.baselines.Baseline.load>` finds them by name.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from stable_baselines3 import A2C, DDPG, PPO, SAC, TD3
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise

from agents.baselines import BASELINES, Baseline
from agents.scall import ScallSAC
from agents.search_agents import ENV_KWARGS as SEARCH_ENV_KWARGS
from agents.search_agents import SEARCH_AGENTS, SearchAgent

SB3_ALGOS: dict[str, type[BaseAlgorithm]] = {
    "scall": ScallSAC,
    "sac": SAC,
    "td3": TD3,
    "ddpg": DDPG,
    "ppo": PPO,
    "a2c": A2C,
}
"""Learning agents by name."""
BASELINES.update(SEARCH_AGENTS)  # the registry of agents played without an SB3 learner
ALGOS: tuple[str, ...] = (*SB3_ALGOS, *BASELINES)
"""Every agent name the harness accepts."""
CONFIG_DIR = Path(__file__).resolve().parent / "hyperparams"
"""Default folder of the per-algorithm hyper-parameter files (installed with the package)."""

ACTIVATIONS = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh, "elu": torch.nn.ELU}
NOISES = {"normal": NormalActionNoise, "ornstein-uhlenbeck": OrnsteinUhlenbeckActionNoise}

Agent = BaseAlgorithm | Baseline
_SET_BY_HARNESS = ("env", "seed", "device", "tensorboard_log", "verbose")
"""Constructor arguments :func:`make_agent` passes itself, never hyper-parameters."""


def check_algo(algo: str) -> None:
    """Raise ``ValueError`` naming the known agents when ``algo`` is unknown."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose from {', '.join(ALGOS)}")


def check_hyperparams(algo: str, hyperparams: dict[str, Any]) -> None:
    """Raise ``ValueError`` when ``hyperparams`` names an argument ``algo``'s agent does not take,
    or gives a baseline or search agent a value it refuses.

    A comparison calls this for every run before the first, so a misspelt name or a bad baseline
    value stops it at once instead of when that agent's turn comes. The values of an SB3
    algorithm's hyper-parameters are checked when the agent is built (it needs the env).
    """
    check_algo(algo)
    cls = SB3_ALGOS.get(algo) or BASELINES[algo]
    accepted: set[str] = set()
    for klass in cls.__mro__:  # up to the first constructor without **kwargs
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
        if all(p.kind is not p.VAR_KEYWORD for p in params):
            break
    reserved = sorted(set(hyperparams) & set(_SET_BY_HARNESS))
    if reserved:
        raise ValueError(
            f"{', '.join(reserved)} for {algo} is set by the run (its own option, e.g. --seed or "
            "--device), not a hyper-parameter"
        )
    accepted -= {"self", *_SET_BY_HARNESS}
    unknown = sorted(set(hyperparams) - accepted)
    if unknown:
        allowed = sorted(name for name in accepted if not name.startswith("_"))
        raise ValueError(
            f"unknown hyper-parameter(s) {', '.join(unknown)} for {algo}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    if algo in BASELINES:  # cheap to build without an env: their values are checked here
        make_agent(algo, None, hyperparams)
        env_overrides(algo, hyperparams)


def load_hyperparams(
    algo: str, env_id: str, config: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Hyper-parameters of ``algo`` for ``env_id``: the ``default`` section updated by the env's.

    Args:
        algo: Agent name (see :data:`ALGOS`).
        env_id: Environment id (its section overrides ``default``).
        config: A YAML file to read instead of ``agents/hyperparams/<algo>.yaml``.

    Raises:
        ValueError: Unknown algo, or a file that is not a mapping of sections.
        FileNotFoundError: The file does not exist.
    """
    check_algo(algo)
    path = Path(config) if config is not None else CONFIG_DIR / f"{algo}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"hyper-parameter file {path} does not exist (or is no file)")
    sections = read_yaml(path, "hyper-parameter file") or {}
    if not isinstance(sections, dict) or not all(
        isinstance(v, dict) for v in sections.values() if v is not None
    ):
        raise ValueError(f"{path} must map section names (env ids or 'default') to mappings")
    return {**(sections.get("default") or {}), **(sections.get(env_id) or {})}


def read_yaml(path: Path, what: str) -> Any:
    """The YAML document in ``path``; ``ValueError`` naming the file and the line if malformed."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or exc
        raise ValueError(f"{what} {path} is not valid YAML{where}: {problem}") from exc
    except UnicodeDecodeError as exc:
        raise ValueError(f"{what} {path} is not a text file ({exc})") from exc


def env_overrides(algo: str, hyperparams: dict[str, Any]) -> dict[str, Any]:
    """Environment keyword arguments an agent needs (a baseline's sizer, a search agent's
    ``commit="best"``), else ``{}``."""
    check_algo(algo)
    if algo in SEARCH_AGENTS:
        return dict(SEARCH_ENV_KWARGS)
    if algo in BASELINES:
        sizer = BASELINES[algo].sizer(**hyperparams)
        if sizer is not None:
            return {"sizer": sizer}
    return {}


def _sb3_kwargs(hyperparams: dict[str, Any], env: gym.Env) -> dict[str, Any]:
    kwargs = dict(hyperparams)
    policy_kwargs = dict(kwargs.pop("policy_kwargs", None) or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        name = policy_kwargs["activation_fn"].lower()
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation_fn {name!r}; choose from {sorted(ACTIVATIONS)}")
        policy_kwargs["activation_fn"] = ACTIVATIONS[name]
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    noise = kwargs.pop("action_noise", None)
    if noise is not None:
        noise = dict(noise)
        kind = noise.pop("type", "normal")
        if kind not in NOISES:
            raise ValueError(f"unknown action_noise type {kind!r}; choose from {sorted(NOISES)}")
        n_actions = int(np.prod(env.action_space.shape))
        sigma = float(noise.pop("sigma", 0.1))
        kwargs["action_noise"] = NOISES[kind](
            mean=np.zeros(n_actions), sigma=sigma * np.ones(n_actions), **noise
        )
    return kwargs


def make_agent(
    algo: str,
    env: gym.Env,
    hyperparams: dict[str, Any] | None = None,
    *,
    seed: int | None = None,
    device: str = "auto",
    tensorboard_log: str | os.PathLike | None = None,
) -> Agent:
    """Build an agent for ``env``.

    Args:
        algo: Agent name (see :data:`ALGOS`).
        env: The environment (for baselines with a sizer, built with :func:`env_overrides`).
        hyperparams: Constructor arguments (as from :func:`load_hyperparams`); ``policy`` defaults
            to ``"MlpPolicy"`` (``"ScallSACPolicy"`` for ``scall``).
        seed: Seed of the agent.
        device: Torch device of the networks (``"auto"``: CUDA when available).
        tensorboard_log: Folder for SB3's TensorBoard logs.

    Raises:
        ValueError: Unknown algo, or a hyper-parameter the agent does not accept.
    """
    check_algo(algo)
    hyperparams = dict(hyperparams or {})
    if algo in BASELINES:
        try:
            return BASELINES[algo](env=env, seed=seed, **hyperparams)
        except TypeError as exc:
            raise ValueError(f"bad hyper-parameters for {algo}: {exc}") from exc
    cls = SB3_ALGOS[algo]
    kwargs = _sb3_kwargs(hyperparams, env)
    policy = kwargs.pop("policy", "ScallSACPolicy" if algo == "scall" else "MlpPolicy")
    try:
        return cls(
            policy,
            env,
            seed=seed,
            device=device,
            tensorboard_log=None if tensorboard_log is None else os.fspath(tensorboard_log),
            verbose=0,
            **kwargs,
        )
    except (TypeError, AssertionError) as exc:  # SB3 checks some values with asserts
        raise ValueError(f"bad hyper-parameters for {algo} {hyperparams}: {exc}") from exc


def load_agent(
    algo: str, path: str | os.PathLike, env: gym.Env | None = None, device: str = "auto"
) -> Agent:
    """Load an agent saved by ``agent.save(path)`` (a search agent with its search state).

    Args:
        algo: Agent name used when it was built.
        path: The saved file (``.zip`` for SB3 agents, ``.json`` for baselines).
        env: Environment to attach (optional for prediction).
        device: Torch device of an SB3 agent's networks (``"auto"``: CUDA when available).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is damaged or holds another kind of agent (the message names it).
    """
    check_algo(algo)
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist (or is no file)")
    try:
        if algo in SEARCH_AGENTS:
            agent: Agent = SearchAgent.load(path, env=env)
        elif algo in BASELINES:
            agent = Baseline.load(path, env=env)
        else:
            agent = SB3_ALGOS[algo].load(path, env=env, device=device)
    # what reading a damaged file, or another agent's, raises on the way (SB3 included)
    except (ValueError, TypeError, KeyError, AttributeError, UnicodeDecodeError) as exc:
        raise ValueError(
            f"{path} is not a saved {algo} agent ({type(exc).__name__}: {exc})"
        ) from exc
    if isinstance(agent, Baseline) and agent.name != algo:
        raise ValueError(f"{path} holds the {agent.name} agent, not {algo}")
    return agent


def model_filename(algo: str) -> str:
    """File name a saved agent gets: ``model.zip`` for SB3 agents, ``model.json`` for baselines."""
    check_algo(algo)
    return "model.json" if algo in BASELINES else "model.zip"
