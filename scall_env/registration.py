"""Environment ids registered with Gymnasium when :mod:`scall_env` is imported."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.registration import register, registry

ENTRY_POINT = "scall_env.env:ScallEnv"

SYNTHETIC_KWARGS: dict[str, Any] = {
    "dataset": "synthetic",
    "base_model": "mf",
    "n_segments": 5,
    "budget": 8,
    "d_max": 64,
    "n_groups": 32,
    "search_steps": 5,
    "trial_batches": 50,
    "batch_size": 1024,
}

ENV_KWARGS: dict[str, dict[str, Any]] = {
    # The paper's MovieLens-1M protocol: LightGCN, c = 32, power law, 10 segments, 10-core.
    "Scall-ML1M-v0": {"dataset": "ml-1m"},
    "Scall-ML1M-MF-v0": {"dataset": "ml-1m", "base_model": "mf"},
    "Scall-ML100K-v0": {"dataset": "ml-100k"},
    # Small, offline and fast: a step takes well under a second on 2 CPU cores.
    "Scall-Synthetic-v0": SYNTHETIC_KWARGS,
}


def register_envs() -> None:
    """Register every id of :data:`ENV_KWARGS` (idempotent)."""
    for env_id, kwargs in ENV_KWARGS.items():
        if env_id not in registry:
            register(id=env_id, entry_point=ENTRY_POINT, kwargs=dict(kwargs))
