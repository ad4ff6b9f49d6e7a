"""The CPU's denormal mode: flushing denormal floats to zero while training, and checking it.

x86 CPUs process denormal floats (below float32's smallest normal, 1.2e-38) many times slower
than normal ones; LightGCN's backward products meet many once a model separates its triples by a
wide margin (see :class:`~scall_env.recsys.training.TrainConfig`). ``torch.set_flush_denormal``
switches the flush-to-zero mode of the *calling thread* only. A thread starts with the mode of the
thread that creates it, so torch's intra-op pool (started by the first parallel operation of the
process) flushes too when it starts while the mode is on, and keeps denormals when it started
before. torch has no getter for the mode; the probes below test it by arithmetic.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

_PROBE_PER_THREAD = 2**16
"""Probe elements per intra-op thread: twice torch's grain size, so every thread gets a share."""


def _flushed_mask(n: int) -> torch.Tensor:
    """``n`` copies of the smallest float32 denormal times one: True where they were flushed.

    The denormal is made from its bits, as a float conversion would itself be flushed, and the
    result is read back as integers, as a float comparison would treat a denormal as zero.
    """
    smallest = torch.ones(n, dtype=torch.int32).view(torch.float32)
    return smallest.mul(1.0).view(torch.int32) == 0


def denormals_flushed() -> bool:
    """Whether this thread flushes denormal floats to zero (``torch.set_flush_denormal``)."""
    return bool(_flushed_mask(1).item())


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True) -> Iterator[None]:
    """Runs the block with denormal floats flushed to zero in this thread, then restores the mode.

    The mode also covers the threads created while it is on (torch's pool, if its first parallel
    operation runs in the block), not a pool that already exists: see
    :func:`flush_denormals_in_thread_pool`. CPUs without the flush flags run the block unchanged.

    Args:
        enabled: False runs the block in the current mode (nothing is switched).
    """
    switch = enabled and not denormals_flushed() and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if switch:
            torch.set_flush_denormal(False)


def flush_denormals_in_thread_pool() -> bool:
    """Makes torch's intra-op threads flush denormals for the rest of the process.

    Starts the pool (if it has not started yet) with one parallel operation in a
    :func:`flushing_denormals` block: its threads keep the mode they start with, while this
    thread's mode is restored (training switches it on around its batches). Call it before the
    process's first parallel torch operation; a pool that started earlier keeps denormals, and a
    :class:`RuntimeWarning` says so. From then on the pool's threads flush in every parallel
    operation of the process (an agent's updates, a later run with ``flush_denormals=False``),
    except threads added by raising the thread count later. With one torch thread there is no
    pool, and nothing changes.

    Returns:
        Whether every intra-op thread flushes now (False also on CPUs without the flush flags).
    """
    threads = torch.get_num_threads()
    if threads == 1:
        return True
    with flushing_denormals():
        if not denormals_flushed():  # no flush flags on this CPU: nothing to start or warn about
            return False
        # the probe's product runs on every thread, in this block's mode if it starts the pool
        flushed = bool(_flushed_mask(_PROBE_PER_THREAD * threads).all())
    if not flushed:
        warnings.warn(
            "torch's thread pool started before denormals were flushed, so its threads keep "
            "them (up to several times slower LightGCN training once margins grow wide); call "
            "scall_env.recsys.flush_denormals_in_thread_pool() or torch.set_flush_denormal(True) "
            "before torch's first parallel operation, or use torch.set_num_threads(1)",
            RuntimeWarning,
            stacklevel=2,
        )
    return flushed
