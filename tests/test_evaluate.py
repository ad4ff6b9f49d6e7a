"""scall-evaluate: a saved agent replayed deterministically, elsewhere too; its usage errors."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from test_agents import SMALL_NETS, TINY_ENV

import scall_cli.evaluate as evaluate
from agents.harness import load_run, run_agent

ROOT = Path(__file__).resolve().parents[1]
ENV_ID = "Scall-Synthetic-v0"


@pytest.fixture
def env_kwargs(tmp_path: Path) -> dict[str, Any]:
    return {**TINY_ENV, "cache_dir": str(tmp_path / "cache")}


def train(tmp_path: Path, env_kwargs: dict[str, Any], algo: str, **options: Any) -> Path:
    """A training run of ``algo`` (seed 1) in ``tmp_path/train``."""
    hyperparams = options.pop("hyperparams", SMALL_NETS.get(algo, {}))
    run_dir = tmp_path / "train"
    run_agent(algo, ENV_ID, env_kwargs=env_kwargs, hyperparams=hyperparams, seed=1,
              device="cpu", run_dir=run_dir, **options)  # fmt: skip
    return run_dir


def run_evaluate(*argv: str) -> None:
    assert evaluate.main([*argv, "--device", "cpu", "--no-progress"]) == 0


def first_pass(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(run_dir / name).query("episode == 0").reset_index(drop=True)


@pytest.mark.parametrize(
    ("algo", "hyperparams"), [("fixed", {"action": [0.2, -0.3, 0.5]}), ("uniform", {})]
)
def test_a_baseline_reproduces_its_training_run(
    algo: str, hyperparams: dict[str, Any], tmp_path: Path, env_kwargs: dict[str, Any]
) -> None:
    trained = train(tmp_path, env_kwargs, algo, hyperparams=hyperparams)
    out = tmp_path / "eval"
    run_evaluate("--model", str(trained), "--save-path", str(out))
    for name in ("segments.csv", "trials.csv"):
        pd.testing.assert_frame_equal(first_pass(out, name), first_pass(trained, name))
    assert load_run(out).averages == load_run(trained).averages
    sizes = [np.load(folder / "sizes_last_segment.npz") for folder in (out, trained)]
    np.testing.assert_array_equal(sizes[0]["user_sizes"], sizes[1]["user_sizes"])
    settings = json.loads((out / "results.json").read_text())["settings"]
    assert settings["evaluated_model"]["path"] == str((trained / "model.json").resolve())


def test_a_trained_sac_agent_evaluates_the_same_twice_and_on_another_budget(
    tmp_path: Path, env_kwargs: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    trained = train(tmp_path, env_kwargs, "sac", total_timesteps=4)
    model = str(trained / "model.zip")
    explicit = [
        "--algo",
        "sac",
        "--env",
        ENV_ID,
        "--seed",
        "2",
        "--env-kwargs",
        json.dumps(env_kwargs),
    ]
    for name in ("a", "b"):
        run_evaluate("--model", model, *explicit, "--save-path", str(tmp_path / name))
    for name in ("segments.csv", "trials.csv"):
        pd.testing.assert_frame_equal(
            pd.read_csv(tmp_path / "a" / name), pd.read_csv(tmp_path / "b" / name)
        )
    assert "average over segments >= 1: recall@20" in capsys.readouterr().out

    run_evaluate("--model", str(trained), "--env-kwargs", '{"budget": 4}',
                 "--save-path", str(tmp_path / "small"))  # fmt: skip
    small = first_pass(tmp_path / "small", "segments.csv")
    same = first_pass(tmp_path / "a", "segments.csv")
    assert (small["budget_params"] < same["budget_params"]).all()
    assert (small["params_used"] <= small["budget_params"]).all()
    assert len(small) == len(same)  # the rest of the training run's arguments were kept


def test_a_search_agent_plays_its_incumbent(tmp_path: Path, env_kwargs: dict[str, Any]) -> None:
    trained = train(tmp_path, env_kwargs, "random-search")
    incumbent = json.loads((trained / "model.json").read_text())["state"]["elite"][0]
    run_evaluate("--model", str(trained), "--save-path", str(tmp_path / "eval"))
    trials = first_pass(tmp_path / "eval", "trials.csv")
    commits = first_pass(tmp_path / "eval", "segments.csv").query("segment >= 1")
    for action in [*trials["action"], *commits["action"]]:
        np.testing.assert_allclose(json.loads(action), incumbent)


def test_arguments_come_from_the_run_unless_the_env_changes(
    tmp_path: Path, env_kwargs: dict[str, Any]
) -> None:
    trained = train(tmp_path, env_kwargs, "fixed")
    args = evaluate.build_parser().parse_args(["--model", str(trained), "--seed", "5"])
    plan = evaluate.resolve(args)
    assert (plan["algo"], plan["env_id"], plan["seed"]) == ("fixed", ENV_ID, 5)
    assert plan["model"] == trained / "model.json"
    assert plan["env_kwargs"]["n_segments"] == 4 and "device" not in plan["env_kwargs"]
    args = evaluate.build_parser().parse_args(
        ["--model", str(trained), "--env", "Scall-ML100K-v0", "--env-kwargs", '{"budget": 8}']
    )
    assert evaluate.resolve(args)["env_kwargs"] == {"budget": 8}


# ------------------------------------------------------------------------ usage errors
@pytest.fixture
def trained_fixed(tmp_path: Path, env_kwargs: dict[str, Any]) -> Path:
    return train(tmp_path, env_kwargs, "fixed")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "{tmp}/nowhere"], "{tmp}/nowhere does not exist; give a saved agent"),
        (["--model", "{tmp}/lone"], "give --algo: {tmp}/lone holds no results.json"),
        (["--model", "{tmp}/lone", "--algo", "fixed"], "{tmp}/lone holds no model.json"),
        (["--model", "{run}", "--algo", "sac"], "--algo sac, but {run}/results.json was made by"),
        (["--model", "{run}", "--env", "Nope-v0"], "unknown env 'Nope-v0'; registered: Scall-"),
        (["--model", "{run}", "--env-kwargs", "[1]"], "expected a JSON object"),
        (["--model", "{run}", "--env-kwargs", '{"budget_type": "GB"}'], "budget_type must be one"),
        (["--model", "{run}", "--env-kwargs", '{"colour": 1}'], "arguments ['colour']; allowed:"),
        (["--model", "{run}", "--seed", "-1"], "expected an integer >= 0, got -1"),
        (["--model", "{run}", "--save-path", "{run}/model.json"], "is a file; give a folder"),
        (["--model", "{broken}"], "broken/results.json is unreadable"),
        (["--model", "{tmp}/damaged/model.json", "--algo", "fixed", "--env", "Scall-Synthetic-v0"],
         "{tmp}/damaged/model.json is not a saved fixed agent (JSONDecodeError"),
        (["--model", "{run}/model.json", "--algo", "uniform", "--env", "Scall-Synthetic-v0"],
         "--algo uniform, but {run}/results.json was made by fixed"),
        (["--model", "{tmp}/lone", "--algo", "uniform", "--env", "Scall-Synthetic-v0"],
         "{tmp}/lone holds no model.json"),
        (["--model", "{tmp}/elsewhere/model.json", "--algo", "uniform"],
         "give --env: {tmp}/elsewhere holds no results.json naming the env"),
        (["--model", "{tmp}/elsewhere/model.json", "--algo", "uniform", "--env",
          "Scall-Synthetic-v0"], "{tmp}/elsewhere/model.json holds the fixed agent, not uniform"),
    ],
)  # fmt: skip
def test_bad_arguments_exit_2_with_one_line(
    argv: list[str],
    message: str,
    tmp_path: Path,
    trained_fixed: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "lone").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "results.json").write_text("{not json")
    (tmp_path / "damaged").mkdir()
    (tmp_path / "damaged" / "model.json").write_text("{not json")
    (tmp_path / "elsewhere").mkdir()  # a saved agent without its training run
    (tmp_path / "elsewhere" / "model.json").write_bytes((trained_fixed / "model.json").read_bytes())
    paths = {"tmp": str(tmp_path), "run": str(trained_fixed), "broken": str(tmp_path / "broken")}
    out = tmp_path / "out"

    def fill(text: str) -> str:  # the placeholders {tmp}, {run}, {broken}
        for key, path in paths.items():
            text = text.replace(f"{{{key}}}", path)
        return text

    argv = [fill(arg) for arg in argv]
    if "--save-path" not in argv:
        argv += ["--save-path", str(out)]
    with pytest.raises(SystemExit) as info:
        evaluate.main(argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{evaluate.build_parser().prog}: error: ")
    assert fill(message) in err
    assert not out.exists()  # nothing left behind


# ------------------------------------------------------------- shim and console script
def test_shim_and_console_script() -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "usage: evaluate.py" in out.stdout and evaluate.__doc__.splitlines()[0] in out.stdout
    (point,) = entry_points(group="console_scripts", name="scall-evaluate")
    assert point.load() is evaluate.main
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    assert shutil.which("scall-evaluate", path=search), "run pip install -e ."


def test_a_training_run_is_never_overwritten(
    trained_fixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = {path.name: path.read_bytes() for path in trained_fixed.iterdir() if path.is_file()}
    with pytest.raises(SystemExit) as info:
        evaluate.main(["--model", str(trained_fixed), "--save-path", str(trained_fixed)])
    assert info.value.code == 2
    message = (
        f"--save-path {trained_fixed} holds a training run or comparison (model.json, results.json)"
    )
    assert message in capsys.readouterr().err
    after = {path.name: path.read_bytes() for path in trained_fixed.iterdir() if path.is_file()}
    assert after == before
    # an evaluation's own folder may be written again
    out = tmp_path / "eval"
    run_evaluate("--model", str(trained_fixed), "--save-path", str(out))
    run_evaluate("--model", str(trained_fixed), "--save-path", str(out))
    assert "evaluated_model" in json.loads((out / "results.json").read_text())["settings"]


def test_a_training_run_that_appears_before_the_lock_is_kept(
    trained_fixed: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "new"
    real_lock = evaluate.run_lock

    @contextlib.contextmanager
    def lock_after_a_training_run_appeared(folder: Path) -> Iterator[None]:
        with real_lock(folder):
            shutil.copy(trained_fixed / "results.json", folder / "results.json")
            yield

    monkeypatch.setattr(evaluate, "run_lock", lock_after_a_training_run_appeared)
    with pytest.raises(SystemExit) as info:
        evaluate.main(["--model", str(trained_fixed), "--save-path", str(out)])
    assert info.value.code == 2 and "holds a training run" in capsys.readouterr().err
    assert (out / "results.json").read_bytes() == (trained_fixed / "results.json").read_bytes()


def test_a_comparison_folder_is_never_overwritten(
    trained_fixed: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "comparison"
    (out / "runs").mkdir(parents=True)
    (out / "summary.csv").write_text("agent\n")
    with pytest.raises(SystemExit) as info:
        evaluate.main(["--model", str(trained_fixed), "--save-path", str(out)])
    assert info.value.code == 2
    assert "holds a training run or comparison (summary.csv, runs)" in capsys.readouterr().err
    assert sorted(path.name for path in out.iterdir()) == ["runs", "summary.csv"]
