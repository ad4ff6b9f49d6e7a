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


ROOT = Path(__file__).resolve().parents[1]

POOL_SCRIPT = """
import sys, warnings
import torch
from scall_env.recsys import denormals_flushed, flush_denormals_in_thread_pool
torch.set_num_threads(2)
if sys.argv[1] == "late":
    torch.ones(2**20).mul(2.0).sum()  # a parallel operation starts the pool, denormals kept
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    first = flush_denormals_in_thread_pool()
    again = flush_denormals_in_thread_pool()  # whether the pool flushes now
print(first, again, len(caught), denormals_flushed())
"""


def run_python(script: str, *argv: str) -> str:
    """Runs ``script`` in a fresh interpreter from the repository root; returns its stdout."""
    out = subprocess.run(
        [sys.executable, "-c", script, *argv], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize(
    ("when", "expected"),
    # early: the pool starts flushed and stays so; late: it started before, keeps denormals, and
    # each call warns. This thread's mode is restored either way.
    [("early", "True True 0 False"), ("late", "False False 2 False")],
)
def test_the_pool_flushes_when_it_starts_flushed(when: str, expected: str) -> None:
    assert run_python(POOL_SCRIPT, when).splitlines()[0] == expected


def test_one_thread_has_no_pool_to_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(mode: bool) -> bool:
        raise AssertionError("no mode may be switched with one thread")

    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    monkeypatch.setattr(torch, "set_flush_denormal", refuse)
    assert flush_denormals_in_thread_pool()


EVALUATE_SCRIPT = """
import sys, warnings
import torch
from scall_cli.evaluate import main
from scall_env.recsys import flush_denormals_in_thread_pool
torch.set_num_threads(2)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    main(["--model", sys.argv[1], "--save-path", sys.argv[2], "--device", "cpu", "--no-progress"])
    print(flush_denormals_in_thread_pool(), sum("thread pool" in str(w.message) for w in caught))
"""


def test_evaluation_starts_the_pool_flushed_before_loading_the_agent(tmp_path: Path) -> None:
    # SAC's stock 256 x 256 networks: loading them runs parallel copies, which would start the
    # pool with denormals kept if the pool were not started first
    run_agent("sac", "Scall-Synthetic-v0", run_dir=tmp_path / "run", device="cpu",
              env_kwargs={**TINY, "cache_dir": str(tmp_path)}, total_timesteps=2)  # fmt: skip
    out = run_python(EVALUATE_SCRIPT, str(tmp_path / "run"), str(tmp_path / "eval"))
    assert out.splitlines()[-1] == "True 0"


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
