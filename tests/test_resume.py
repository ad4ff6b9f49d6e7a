"""Kill and resume: a run killed after a committed segment continues from its checkpoint, and its
``results.json``, ``segments.csv`` and ``trials.csv`` are those of a run never interrupted.

The kill is an exception raised right after the second checkpoint is written (after segment 2),
as a process killed at that moment leaves things: the checkpoint on disk, no ``results.json``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_agents import TINY_ENV

import agents.checkpoint
from agents.checkpoint import CHECKPOINT_FILE
from agents.harness import RESULTS_FILE, run_agent
from agents.settings import run_settings
from scall_cli import compare, train

#: Adaptive search (the stopping rule's state crosses the checkpoints), 4 commits per pass.
ENV: dict[str, Any] = {
    **TINY_ENV, "n_segments": 5, "search": "adaptive", "search_window": 2, "search_max_steps": 4
}  # fmt: skip
SMALL: dict[str, dict[str, Any]] = {
    "td3": {"policy_kwargs": {"net_arch": [16]}},
    "ppo": {"n_steps": 4, "batch_size": 4, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}},
}


class Killed(Exception):
    """Stands for the kill of the process."""


@pytest.fixture
def kill_after(monkeypatch: pytest.MonkeyPatch) -> Callable[[int | None], None]:
    """``kill_after(n)``: the run dies right after writing its n-th checkpoint (None: never)."""
    save = agents.checkpoint.Checkpointer.save

    def arm(n: int | None) -> None:
        written = [0]

        def save_then_die(self: agents.checkpoint.Checkpointer) -> None:
            save(self)
            written[0] += 1
            if n is not None and written[0] >= n:
                raise Killed

        monkeypatch.setattr(agents.checkpoint.Checkpointer, "save", save_then_die)

    return arm


def comparison(folder: Path, env_kwargs: dict[str, Any], **entries: Any) -> Path:
    """A comparison config in ``folder``: scall and uniform, seeds 0 and 1, on CPU."""
    config = {"env": "Scall-Synthetic-v0", "agents": ["scall", "uniform"], "seeds": [0, 1]}
    env_kwargs = {**env_kwargs, "cache_dir": str(folder / "cache")}
    path = folder / "compare.yaml"
    path.write_text(json.dumps({**config, "env_kwargs": env_kwargs, "device": "cpu", **entries}))
    return path


def tensorboard_threads() -> list[threading.Thread]:
    """Live TensorBoard writer threads (a run closes its writer, also when it dies)."""
    return [t for t in threading.enumerate() if type(t).__name__ == "_AsyncWriterThread"]


def outputs(run_dir: Path) -> dict[str, Any]:
    """The files a finished run is judged by, wall time aside."""
    results = json.loads((run_dir / RESULTS_FILE).read_text())
    results.pop("wall_time_s")
    return {
        "results": results,
        **{name: (run_dir / name).read_text() for name in ("segments.csv", "trials.csv")},
    }


@pytest.mark.parametrize(
    ("algo", "commit_only", "kill"),
    # PPO checkpoints at rollout ends (4 steps) after a commit: once or twice in a pass
    [
        ("scall", False, 2),
        ("td3", False, 2),
        ("ppo", False, 1),
        ("random", False, 2),
        ("frequency", True, 2),
    ],  # fmt: skip
)
def test_a_killed_run_resumes_to_the_same_files(
    algo: str,
    commit_only: bool,
    kill: int,
    tmp_path: Path,
    kill_after: Callable[[int | None], None],
) -> None:
    options = {
        "env_kwargs": {**ENV, "cache_dir": str(tmp_path / "cache")},
        "hyperparams": SMALL.get(algo, {}),
        "seed": 3,
        "device": "cpu",
        "commit_only": commit_only,
    }
    kill_after(None)
    whole = tmp_path / "whole"
    run_agent(algo, "Scall-Synthetic-v0", run_dir=whole, tensorboard_dir=whole / "tb", **options)
    assert not tensorboard_threads()

    cut = tmp_path / "cut"
    kill_after(kill)
    with pytest.raises(Killed):
        run_agent(algo, "Scall-Synthetic-v0", run_dir=cut, tensorboard_dir=cut / "tb", **options)
    assert (cut / CHECKPOINT_FILE).exists() and not (cut / RESULTS_FILE).exists()
    assert not tensorboard_threads()

    kill_after(None)
    run_agent(
        algo, "Scall-Synthetic-v0", run_dir=cut, tensorboard_dir=cut / "tb", resume=True, **options
    )
    assert outputs(cut) == outputs(whole)
    assert not (cut / CHECKPOINT_FILE).exists()  # results.json marks it finished now


def test_resume_refuses_a_checkpoint_of_other_settings(
    tmp_path: Path, kill_after: Callable[[int | None], None]
) -> None:
    options = {"env_kwargs": {**ENV, "cache_dir": str(tmp_path / "c")}, "device": "cpu"}
    kill_after(1)
    with pytest.raises(Killed):
        run_agent("fixed", "Scall-Synthetic-v0", run_dir=tmp_path / "run", seed=0, **options)
    with pytest.raises(ValueError, match="cannot resume .* other settings"):
        run_agent(
            "fixed", "Scall-Synthetic-v0", run_dir=tmp_path / "run", seed=1, resume=True, **options
        )
    with pytest.raises(ValueError, match="it has no checkpoint"):
        run_agent("fixed", "Scall-Synthetic-v0", run_dir=tmp_path / "new", resume=True, **options)


def test_fingerprint_leaves_out_what_changes_no_output(tmp_path: Path) -> None:
    # where caches live changes no file a run writes, so a finished run is reused, and a killed
    # one resumed, wherever they are; flushing denormals (the default) keeps the fingerprint of
    # runs made before the keyword existed, while keeping denormals is a run of its own
    def settings(**env: Any) -> dict[str, Any]:
        return run_settings("fixed", "Scall-Synthetic-v0", env_kwargs={**ENV, **env}, device="cpu")

    plain = settings()
    assert settings(cache_dir=str(tmp_path), use_cache=False, flush_denormals=True) == plain
    assert "flush_denormals" not in plain["env_kwargs"]
    assert settings(flush_denormals=False)["env_kwargs"]["flush_denormals"] is False
    assert settings(lr=0.02) != plain


def test_train_resume_continues_with_the_runs_own_settings(
    tmp_path: Path,
    kill_after: Callable[[int | None], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    def argv(out: Path) -> list[str]:
        env = json.dumps({**ENV, "cache_dir": str(tmp_path / "cache")})
        return ["--algo", "scall", "--env", "Scall-Synthetic-v0", "--env-kwargs", env, "--seed",
                "2", "--device", "cpu", "--no-progress", "--save-path", str(out)]  # fmt: skip

    kill_after(None)
    assert train.main(argv(tmp_path / "whole")) == 0
    kill_after(2)
    with pytest.raises(Killed):
        train.main(argv(tmp_path / "cut"))
    kill_after(None)
    assert train.main(["--resume", str(tmp_path / "cut"), "--no-progress"]) == 0
    assert outputs(tmp_path / "cut") == outputs(tmp_path / "whole")
    assert list((tmp_path / "cut" / "tb").rglob("events.out.tfevents.*"))
    capsys.readouterr()

    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", str(tmp_path / "cut"), "--seed", "5"])
    assert exit_info.value.code == 2
    assert "drop --seed" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--resume", str(tmp_path / "cut")])  # finished: nothing to resume
    assert exit_info.value.code == 2
    assert "holds no checkpoint.pt" in capsys.readouterr().err


def test_compare_resume_continues_killed_runs_and_skips_damaged_checkpoints(
    tmp_path: Path,
    kill_after: Callable[[int | None], None],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = comparison(tmp_path, ENV)

    def run(out: str, *extra: str) -> pd.DataFrame:
        argv = ["--config", str(config), "--output", str(tmp_path / out), "--no-progress"]
        assert compare.main([*argv, *extra]) == 0
        return pd.read_csv(tmp_path / out / "segments.csv").drop(columns="wall_time_s")

    kill_after(None)
    whole = run("whole")
    kill_after(3)  # scall/seed0 dies after its third checkpoint (segment 3 of 4)
    with pytest.raises(Killed):
        run("cut")
    runs = tmp_path / "cut" / "runs"
    assert (runs / "scall" / "seed0" / CHECKPOINT_FILE).exists()
    kill_after(None)
    capsys.readouterr()
    pd.testing.assert_frame_equal(run("cut", "--resume"), whole)
    printed = capsys.readouterr().out
    assert "scall/seed0: resuming" in printed and "scall/seed1: starting" in printed

    # a damaged checkpoint (and a temporary file left by a killed write) is never taken for one
    kill_after(1)
    with pytest.raises(Killed):
        run("broken")
    checkpoint = tmp_path / "broken" / "runs" / "scall" / "seed0" / CHECKPOINT_FILE
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    (checkpoint.parent / f".{CHECKPOINT_FILE}.x.tmp").write_bytes(b"half")
    kill_after(None)
    capsys.readouterr()
    pd.testing.assert_frame_equal(run("broken", "--resume"), whole)
    assert "scall/seed0: running it again" in capsys.readouterr().out
