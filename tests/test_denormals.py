"""The denormal mode: scoped in a thread, inherited by torch's pool, which runs flush first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _tiny import tiny_env

import agents.harness
import scall_cli.evaluate as evaluate
from agents.harness import run_agent
from scall_env.recsys import denormals_flushed, flush_denormals_in_thread_pool, flushing_denormals

TINY = tiny_env(n_segments=3)


def test_the_mode_is_scoped_and_restored() -> None:
    assert not denormals_flushed()  # torch's default
    with flushing_denormals():
        assert denormals_flushed()
        with flushing_denormals():  # already on: left on by the inner block
            assert denormals_flushed()
        assert denormals_flushed()
    assert not denormals_flushed()
    with flushing_denormals(False):
        assert not denormals_flushed()
    with pytest.raises(KeyError), flushing_denormals():
        raise KeyError("restored on errors too")
    assert not denormals_flushed()


POOL_SCRIPT = """
import sys, warnings
import torch
from scall_env.recsys import (
    denormals_flushed, flush_denormals_in_thread_pool, flushing_denormals, pool_flushes_denormals
)
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(2**20).mul(2.0).sum()  # a parallel operation starts the pool, denormals kept
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    returned = flush_denormals_in_thread_pool()
with flushing_denormals():
    print(returned, len(caught), pool_flushes_denormals(), denormals_flushed())
print(denormals_flushed())
"""


@pytest.mark.parametrize(
    ("when", "expected"),
    # early: the pool starts flushed and stays so; late: it started before, only this thread's
    # share of a product is flushed, and a warning says so. This thread's mode is restored.
    [("early", "True 0 True True\nFalse"), ("late", "False 1 False True\nFalse")],
)
def test_the_pool_flushes_when_it_starts_flushed(when: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", POOL_SCRIPT, when], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[:2] == expected.split("\n")


def test_one_thread_has_no_pool_to_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    assert flush_denormals_in_thread_pool()
    assert not denormals_flushed()


@pytest.fixture
def pool_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records who asks to flush the pool (the real call would depend on the test order)."""
    calls: list[str] = []
    for module in (agents.harness, evaluate):
        monkeypatch.setattr(
            module, "flush_denormals_in_thread_pool", lambda m=module: calls.append(m.__name__)
        )
    return calls


@pytest.mark.parametrize("flush", [True, False])
def test_runs_and_evaluations_flush_the_pool_as_their_env_says(
    tmp_path: Path, pool_calls: list[str], flush: bool
) -> None:
    env_kwargs = {**TINY, "cache_dir": str(tmp_path), "flush_denormals": flush}
    run_agent("uniform", "Scall-Synthetic-v0", run_dir=tmp_path / "run", device="cpu",
              env_kwargs=env_kwargs)  # fmt: skip
    argv = ["--model", str(tmp_path / "run"), "--save-path", str(tmp_path / "eval")]
    assert evaluate.main([*argv, "--device", "cpu", "--no-progress"]) == 0
    assert pool_calls == (["agents.harness", "scall_cli.evaluate"] if flush else [])
