"""The tiny synthetic setting that the environment, agent and CLI tests share.

400 users, 250 items and 12,000 interactions; tables at most 16 wide; trials of 5 batches of 128
triples: a whole pass takes seconds. Each test module adds or replaces the settings it is about.
"""

from __future__ import annotations

from typing import Any

TINY_DATA: dict[str, int] = {"n_users": 400, "n_items": 250, "n_interactions": 12_000}
"""``dataset_options`` of the synthetic stream."""


def tiny_env(**settings: Any) -> dict[str, Any]:
    """``gym.make`` / ``EnvConfig`` keywords of the tiny setting, updated with ``settings``."""
    return {
        "dataset_options": dict(TINY_DATA),
        "d_max": 16,
        "trial_batches": 5,
        "batch_size": 128,
        **settings,
    }
