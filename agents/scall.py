"""SCALL's agent: Soft Actor-Critic with the paper's settings, built on Stable-Baselines3's SAC.

What differs from a stock ``SAC("MlpPolicy", env)``:

* :class:`RecencyReplayBuffer` draws transitions without replacement with probability
  proportional to their insertion index (recent transitions are favoured), and serves batches of
  1 while at most 12 transitions are stored, then the configured batch size (8);
* no random warm-up action (``learning_starts=0``): the first action is the policy's;
* :class:`ScallSACPolicy` uses 512-512 ReLU actor and twin critics with Xavier-uniform weights
  and zero biases, Adam with weight decay 1e-4, and clips the actor's gradient norm at 1;
* :class:`ScallSAC` gives the actor its own learning rate (2e-4) beside the critics' (3e-4).

Everything else is SB3's SAC (tanh-squashed Gaussian, log-std clamped to [-20, 2]), so the agent
saves, loads and logs like any SB3 model. Where SB3 makes an exact match with the authors' code
impossible: SB3 updates the networks after ``env.step`` returns, so the env's stopping rule
(evaluated inside the step) sees the policy one update round earlier than the authors' loop,
which updates before checking it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples, Schedule
from stable_baselines3.common.utils import update_learning_rate
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.sac.policies import SACPolicy

PAPER_SETTINGS: dict[str, Any] = {
    "learning_rate": 3e-4,
    "actor_learning_rate": 2e-4,
    "buffer_size": 100_000,
    "learning_starts": 0,
    "batch_size": 8,
    "tau": 0.005,
    "gamma": 0.99,
    "train_freq": 1,
    "gradient_steps": 3,
    "ent_coef": 0.2,
}
"""SCALL's SAC hyper-parameters (``shared/spec/SCALL.md``, "The search")."""


class ClippedAdam(torch.optim.Adam):
    """Adam that clips the global gradient norm of its parameters before every step.

    Args:
        params: Parameters to optimise.
        max_grad_norm: Largest gradient norm (``torch.nn.utils.clip_grad_norm_``).
        **kwargs: Passed to :class:`torch.optim.Adam` (``lr``, ``weight_decay``, ...).
    """

    def __init__(
        self, params: Iterable[torch.nn.Parameter], max_grad_norm: float = 1.0, **kwargs: Any
    ) -> None:
        super().__init__(params, **kwargs)
        self.max_grad_norm = max_grad_norm

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Clip the gradients, then take an Adam step."""
        params = [p for group in self.param_groups for p in group["params"] if p.grad is not None]
        torch.nn.utils.clip_grad_norm_(params, self.max_grad_norm)
        return super().step(closure)


def _xavier(module: torch.nn.Module) -> None:
    if isinstance(module, torch.nn.Linear):
        torch.nn.init.xavier_uniform_(module.weight)
        torch.nn.init.zeros_(module.bias)


class ScallSACPolicy(SACPolicy):
    """SAC policy with 512-512 ReLU networks, Adam(weight_decay=1e-4) and actor gradient clipping.

    Args:
        *args: Passed to :class:`~stable_baselines3.sac.policies.SACPolicy`.
        actor_max_grad_norm: Gradient-norm clip of the actor's optimiser.
        **kwargs: Passed to :class:`~stable_baselines3.sac.policies.SACPolicy`; ``net_arch``,
            ``activation_fn`` and ``optimizer_kwargs`` default to the paper's.
    """

    def __init__(self, *args: Any, actor_max_grad_norm: float = 1.0, **kwargs: Any) -> None:
        kwargs.setdefault("net_arch", {"pi": [512, 512], "qf": [512, 512]})
        kwargs.setdefault("activation_fn", torch.nn.ReLU)
        kwargs.setdefault("optimizer_kwargs", {"weight_decay": 1e-4})
        self.actor_max_grad_norm = actor_max_grad_norm
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        # the authors' initialisation; the target critic must start as a copy again
        self.actor.apply(_xavier)
        self.critic.apply(_xavier)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.actor.optimizer = ClippedAdam(
            self.actor.parameters(),
            max_grad_norm=self.actor_max_grad_norm,
            lr=lr_schedule(1),
            **self.optimizer_kwargs,
        )

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["actor_max_grad_norm"] = self.actor_max_grad_norm
        return data


class RecencyReplayBuffer(ReplayBuffer):
    """Replay buffer that favours recent transitions, with a small warm-up batch.

    A batch draws distinct stored transitions (without replacement, as the authors), each with
    probability proportional to its insertion index (the oldest transition still stored has
    weight 1, the newest the largest). While at most ``warmup_transitions`` are stored, batches
    hold ``warmup_batch_size`` transitions; a batch never holds more than what is stored.

    Args:
        *args: Passed to :class:`~stable_baselines3.common.buffers.ReplayBuffer`.
        warmup_transitions: Stored transitions up to which the warm-up batch size applies.
        warmup_batch_size: Batch size during the warm-up.
        **kwargs: Passed to :class:`~stable_baselines3.common.buffers.ReplayBuffer`.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *args: Any,
        warmup_transitions: int = 12,
        warmup_batch_size: int = 1,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("optimize_memory_usage"):
            raise ValueError("RecencyReplayBuffer does not support optimize_memory_usage=True")
        super().__init__(buffer_size, observation_space, action_space, *args, **kwargs)
        self.warmup_transitions = warmup_transitions
        self.warmup_batch_size = warmup_batch_size

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """Draw a batch, recent transitions more likely (see the class docstring).

        Args:
            batch_size: Batch size once the warm-up is over.
            env: Optional ``VecNormalize`` to normalise observations and rewards.
        """
        stored = self.size()
        if stored <= self.warmup_transitions:
            batch_size = self.warmup_batch_size
        batch_size = min(batch_size, stored)
        # Slot (pos + k) % buffer_size holds the k-th oldest transition when the buffer is full.
        oldest = self.pos if self.full else 0
        weights = np.arange(1, stored + 1, dtype=np.float64)
        # SB3's buffers draw from numpy's global generator, which SB3 seeds (set_random_seed).
        ranks = np.random.choice(  # noqa: NPY002
            stored, size=batch_size, replace=False, p=weights / weights.sum()
        )
        return self._get_samples((oldest + ranks) % self.buffer_size, env=env)


class ScallSAC(SAC):
    """SB3's SAC with a separate actor learning rate; defaults are SCALL's settings.

    Args:
        policy: Policy class or name (default :class:`ScallSACPolicy`).
        env: The environment.
        actor_learning_rate: Learning rate (or schedule of progress remaining) of the actor;
            ``learning_rate`` drives the critics.
        **kwargs: Passed to :class:`~stable_baselines3.SAC`; unset ones take
            :data:`PAPER_SETTINGS`, and ``replay_buffer_class`` defaults to
            :class:`RecencyReplayBuffer`.
    """

    policy_aliases = {**SAC.policy_aliases, "ScallSACPolicy": ScallSACPolicy}

    def __init__(
        self,
        policy: str | type[SACPolicy] = "ScallSACPolicy",
        env: Any = None,
        actor_learning_rate: float | Schedule = PAPER_SETTINGS["actor_learning_rate"],
        **kwargs: Any,
    ) -> None:
        for key, value in PAPER_SETTINGS.items():
            if key != "actor_learning_rate":
                kwargs.setdefault(key, value)
        kwargs.setdefault("replay_buffer_class", RecencyReplayBuffer)
        self.actor_learning_rate = actor_learning_rate
        super().__init__(policy, env, **kwargs)

    def _actor_lr(self) -> float:
        lr = self.actor_learning_rate
        return float(lr(self._current_progress_remaining) if callable(lr) else lr)

    def _setup_model(self) -> None:
        super()._setup_model()
        update_learning_rate(self.actor.optimizer, self._actor_lr())

    def _update_learning_rate(
        self, optimizers: list[torch.optim.Optimizer] | torch.optim.Optimizer
    ) -> None:
        super()._update_learning_rate(optimizers)
        update_learning_rate(self.actor.optimizer, self._actor_lr())
        self.logger.record("train/actor_learning_rate", self._actor_lr())
