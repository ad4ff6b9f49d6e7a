"""Shared fixtures (small random segments built by hand) and the real-data requirement of CI.

Tests marked ``realdata`` skip when the MovieLens files are absent. With
``SCALL_REQUIRE_DATA=1`` (set by ``.ci/run``) such a skip is reported as a failure instead, so CI
cannot pass without having run them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import scipy.sparse as sp

from scall_env.segment import Segment

REQUIRE_DATA_ENV = "SCALL_REQUIRE_DATA"
"""When ``"1"``, a skipped ``realdata`` test fails (CI must run them)."""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Turn the skip of a ``realdata`` test into a failure when the data is required."""
    outcome = yield
    report = outcome.get_result()
    if (
        report.skipped
        and os.environ.get(REQUIRE_DATA_ENV) == "1"
        and item.get_closest_marker("realdata") is not None
    ):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.outcome = "failed"
        report.longrepr = (
            f"{item.nodeid} needs the real data but would be skipped ({reason}); "
            f"{REQUIRE_DATA_ENV}=1 requires it: point SCALL_DATA_DIR at the MovieLens folder "
            "(CI: ../shared/data)"
        )


def _csr(mask: np.ndarray) -> sp.csr_matrix:
    """Binary float32 CSR with sorted indices from a boolean matrix."""
    out = sp.csr_matrix(mask.astype(np.float32))
    out.sort_indices()
    return out


def build_segment(
    n_users: int = 30,
    n_items: int = 40,
    *,
    density: float = 0.15,
    current_share: float = 0.7,
    active_share: float = 0.6,
    test_density: float = 0.08,
    seed: int = 0,
) -> Segment:
    """Builds a small random segment that satisfies the :class:`Segment` invariants.

    Every user and item has a training interaction; ``current`` is a random part of the active
    users' training rows (each active user keeps at least one item); ``test`` holds items outside
    the user's training row.

    Args:
        n_users: Users in the training graph.
        n_items: Items in the training graph.
        density: Probability of a training interaction.
        current_share: Probability that an active user's training interaction is in ``current``.
        active_share: Probability that a user is active.
        test_density: Probability of a test interaction outside training.
        seed: Seed of the random structure.

    Returns:
        The segment.
    """
    rng = np.random.default_rng(seed)
    train = rng.random((n_users, n_items)) < density
    train[np.arange(n_users), rng.integers(n_items, size=n_users)] = True
    train[rng.integers(n_users, size=n_items), np.arange(n_items)] = True
    active = rng.random(n_users) < active_share
    active[rng.integers(n_users)] = True
    current = train & active[:, None] & (rng.random((n_users, n_items)) < current_share)
    for u in np.flatnonzero(active & ~current.any(axis=1)):
        current[u, rng.choice(np.flatnonzero(train[u]))] = True
    test = ~train & (rng.random((n_users, n_items)) < test_density)
    return Segment(
        index=1,
        n_users=n_users,
        n_items=n_items,
        train_graph=_csr(train),
        current=_csr(current),
        test=_csr(test),
        test_users=np.flatnonzero(test.any(axis=1)).astype(np.int64),
        candidate_items=np.flatnonzero(test.any(axis=0)).astype(np.int64),
        active_users=np.flatnonzero(current.any(axis=1)).astype(np.int64),
        active_items=np.flatnonzero(current.any(axis=0)).astype(np.int64),
        user_freq=current.sum(axis=1).astype(np.int64),
        item_freq=current.sum(axis=0).astype(np.int64),
        n_train=int(current.sum()),
        n_replay=0,
    )


@pytest.fixture
def make_segment() -> Callable[..., Segment]:
    """The :func:`build_segment` factory."""
    return build_segment


@pytest.fixture
def segment() -> Segment:
    """A default small random segment (30 users, 40 items)."""
    return build_segment()
