"""Agents, the factory, and the two command lines (scall_cli.train, scall_cli.compare)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
import torch
from _tiny import tiny_env

import agents.harness
import agents.settings
import scall_cli.compare
import scall_cli.train
from agents.baselines import BASELINES, Baseline, FixedBaseline, RandomBaseline
from agents.commit import live_policy
from agents.factory import ALGOS, env_overrides, load_agent, load_hyperparams, make_agent
from agents.scall import ClippedAdam, RecencyReplayBuffer, ScallSAC
from scall_env.search import constant_policy_trials
from scall_env.sizing import FrequencySizer, UniformSizer
from scall_env.wrappers import ScallMonitor

ROOT = Path(__file__).resolve().parents[1]
# A tiny synthetic setting: 4 segments, 2 trials per segment -> 6 steps per pass.
TINY_ENV = tiny_env(n_segments=4, n_groups=8, search="fixed", search_steps=2, max_chunks=2)
SMALL_NETS: dict[str, dict[str, Any]] = {
    "sac": {"policy_kwargs": {"net_arch": [16]}},
    "td3": {"policy_kwargs": {"net_arch": [16]}},
    "ddpg": {"policy_kwargs": {"net_arch": [16]}},
    "ppo": {"n_steps": 4, "batch_size": 4, "n_epochs": 1, "policy_kwargs": {"net_arch": [16]}},
    "a2c": {"n_steps": 2, "policy_kwargs": {"net_arch": [16]}},
}


@pytest.fixture(scope="module")
def train_agent() -> ModuleType:
    return scall_cli.train


@pytest.fixture(scope="module")
def compare() -> ModuleType:
    return scall_cli.compare


@pytest.fixture
def tiny_env(tmp_path: Path) -> gym.Env:
    return gym.make("Scall-Synthetic-v0", cache_dir=tmp_path, device="cpu", **TINY_ENV)


# ----------------------------------------------------------------------------- SCALL agent
def test_scall_sac_has_the_paper_settings(tiny_env: gym.Env) -> None:
    model = ScallSAC(env=tiny_env, seed=0, device="cpu")
    assert (model.gamma, model.tau, model.batch_size, model.gradient_steps) == (0.99, 0.005, 8, 3)
    assert float(model.ent_coef_tensor) == pytest.approx(0.2)
    assert model.ent_coef_optimizer is None  # fixed entropy weight
    assert isinstance(model.replay_buffer, RecencyReplayBuffer)
    actor_opt, critic_opt = model.actor.optimizer, model.critic.optimizer
    assert isinstance(actor_opt, ClippedAdam) and actor_opt.max_grad_norm == 1.0
    assert actor_opt.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert critic_opt.param_groups[0]["lr"] == pytest.approx(3e-4)
    assert (
        actor_opt.param_groups[0]["weight_decay"]
        == critic_opt.param_groups[0]["weight_decay"]
        == 1e-4
    )
    linear = [m for m in model.actor.latent_pi if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linear] == [512, 512]
    assert any(isinstance(m, torch.nn.ReLU) for m in model.actor.latent_pi)
    assert len(model.critic.q_networks) == 2


def test_actor_lr_survives_training_updates(tiny_env: gym.Env) -> None:
    model = ScallSAC(env=tiny_env, seed=0, device="cpu")
    model.learn(total_timesteps=3)
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert model.critic.optimizer.param_groups[0]["lr"] == pytest.approx(3e-4)


def test_clipped_adam_clips_the_gradient_norm() -> None:
    weight = torch.nn.Parameter(torch.zeros(4))
    optimizer = ClippedAdam([weight], max_grad_norm=1.0, lr=0.1)
    weight.grad = torch.full((4,), 100.0)
    optimizer.step()
    assert float(weight.grad.norm()) == pytest.approx(1.0)


def test_recency_buffer_warmup_and_bias() -> None:
    obs_space = gym.spaces.Box(-1, 1, (2,), np.float32)
    act_space = gym.spaces.Box(-1, 1, (1,), np.float32)
    buffer = RecencyReplayBuffer(50, obs_space, act_space, device="cpu")

    def add(i: int) -> None:
        obs = np.full((1, 2), i, np.float32)
        buffer.add(obs, obs, np.zeros((1, 1), np.float32), np.array([i]), np.array([False]), [{}])

    for i in range(5):
        add(i)
    assert buffer.sample(8).observations.shape[0] == 1  # fewer than 12 stored
    for i in range(5, 80):  # wraps around: the buffer now holds transitions 30..79
        add(i)
    np.random.seed(0)  # noqa: NPY002  (SB3's buffers draw from numpy's global generator)
    drawn = np.concatenate([buffer.sample(8).rewards.numpy().ravel() for _ in range(400)])
    assert drawn.min() >= 30 and drawn.max() <= 79
    # probability proportional to insertion index: mean rank 2/3 of the way, not 1/2
    assert np.mean(drawn - 30) == pytest.approx(2 / 3 * 50, abs=2.0)


def test_recency_buffer_rejects_memory_optimisation() -> None:
    space = gym.spaces.Box(-1, 1, (1,), np.float32)
    with pytest.raises(ValueError, match="does not support optimize_memory_usage"):
        RecencyReplayBuffer(10, space, space, optimize_memory_usage=True)


# ------------------------------------------------------------------------------ baselines
def test_baselines_predict_and_roundtrip(tmp_path: Path) -> None:
    obs = np.zeros(10, np.float32)
    for name, cls in BASELINES.items():
        baseline = cls(seed=1)
        action, state = baseline.predict(obs, deterministic=True)
        assert action.shape == (3,) and state is None
        assert baseline.predict(np.zeros((4, 10)))[0].shape == (4, 3)
        baseline.save(tmp_path / f"{name}.json")
        loaded = Baseline.load(tmp_path / f"{name}.json")
        assert type(loaded) is cls and loaded.params == baseline.params
        if name != "random":
            np.testing.assert_array_equal(loaded.predict(obs)[0], action)


def test_random_baseline_is_seeded() -> None:
    a = [RandomBaseline(seed=3).predict(None)[0] for _ in range(2)]
    b = RandomBaseline(seed=4).predict(None)[0]
    np.testing.assert_array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)


def test_fixed_baseline_rejects_bad_actions() -> None:
    with pytest.raises(ValueError, match=r"fixed action must have shape \(3,\)"):
        FixedBaseline(action=[0.0, 0.0])
    with pytest.raises(ValueError, match=r"values in \[-1.0, 1.0\], got \[0.0, 2.0, 0.0\]"):
        FixedBaseline(action=[0.0, 2.0, 0.0])


def test_baseline_learn_needs_an_env() -> None:
    with pytest.raises(ValueError, match="learn\\(\\) needs an environment"):
        FixedBaseline().learn(1)


def test_baseline_sizers_are_env_overrides() -> None:
    assert isinstance(env_overrides("uniform", {})["sizer"], UniformSizer)
    sizer = env_overrides("frequency", {"beta": 0.3})["sizer"]
    assert isinstance(sizer, FrequencySizer)
    assert env_overrides("random", {}) == {} and env_overrides("scall", {}) == {}


# -------------------------------------------------------------------------------- factory
def test_every_algo_has_a_config_that_installs_with_the_package() -> None:
    for algo in ALGOS:
        assert isinstance(load_hyperparams(algo, "Scall-Synthetic-v0"), dict)
    # a wheel (not only an editable install) carries them: package data of the agents package
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    patterns = package_data["package-data"]["agents"]
    package = ROOT / "agents"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    assert {package / "hyperparams" / f"{algo}.yaml" for algo in ALGOS} <= shipped


def test_env_section_overrides_default(tmp_path: Path) -> None:
    path = tmp_path / "sac.yaml"
    path.write_text("default: {gamma: 0.9, batch_size: 4}\nScall-Synthetic-v0: {gamma: 0.5}\n")
    assert load_hyperparams("sac", "Scall-Synthetic-v0", path) == {"gamma": 0.5, "batch_size": 4}
    assert load_hyperparams("sac", "Scall-ML1M-v0", path) == {"gamma": 0.9, "batch_size": 4}


def test_factory_errors(tmp_path: Path, tiny_env: gym.Env) -> None:
    with pytest.raises(ValueError, match="unknown algo 'dqn'; choose from scall, sac"):
        load_hyperparams("dqn", "Scall-Synthetic-v0")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_hyperparams("sac", "Scall-Synthetic-v0", tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- 1\n- 2\n")
    with pytest.raises(ValueError, match="must map section names"):
        load_hyperparams("sac", "Scall-Synthetic-v0", bad)
    with pytest.raises(ValueError, match="bad hyper-parameters for sac"):
        make_agent("sac", tiny_env, {"not_a_parameter": 1})
    with pytest.raises(ValueError, match="unknown action_noise type 'pink'"):
        make_agent("td3", tiny_env, {"action_noise": {"type": "pink"}})
    with pytest.raises(ValueError, match="unknown activation_fn 'swish'"):
        make_agent("sac", tiny_env, {"policy_kwargs": {"activation_fn": "swish"}})
    with pytest.raises(ValueError, match="bad hyper-parameters for frequency"):
        make_agent("frequency", tiny_env, {"gamma": 0.5})


# ---------------------------------------------------------------------- train_agent.py
@pytest.mark.parametrize("algo", ALGOS)
def test_train_agent_runs_every_algo(
    algo: str,
    train_agent: ModuleType,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    trained: list[Any] = []  # the agent the command line trained, as it is in memory

    def keep(*args: Any, **kwargs: Any) -> Any:
        trained.append(make_agent(*args, **kwargs))
        return trained[-1]

    monkeypatch.setattr(agents.harness, "make_agent", keep)
    out = tmp_path / "run"
    env_kwargs = {**TINY_ENV, "cache_dir": str(tmp_path / "cache")}
    argv = [
        "--algo", algo, "--env", "Scall-Synthetic-v0", "--seed", "1",
        "--env-kwargs", json.dumps(env_kwargs), "--save-path", str(out),
        "--device", "cpu", "--no-progress",
        "--hyperparams", json.dumps(SMALL_NETS.get(algo, {})),
        "--baseline-trials",  # every agent searches here (commit-only: tests/test_resume.py)
    ]  # fmt: skip
    assert train_agent.main(argv) == 0
    printed = capsys.readouterr().out
    assert "average over segments >= 1" in printed

    results = json.loads((out / "results.json").read_text())
    assert results["algo"] == algo and results["total_timesteps"] == 6  # one pass: 2 * (4 - 1)
    assert [row["segment"] for row in results["segments"]] == [0, 1, 2, 3]
    assert set(results["averages"]) >= {"recall@20", "ndcg@20"}
    segments = pd.read_csv(out / "segments.csv")
    assert {"segment", "recall@20", "ndcg@20", "params_used", "budget_params"} <= set(segments)
    assert (segments["params_used"] <= segments["budget_params"]).all()
    trials = pd.read_csv(out / "trials.csv")
    # on-policy algorithms finish their last rollout, so they may take a few extra steps
    assert len(trials) >= 6 and (trials["params_used"] <= trials["budget_params"]).all()
    assert {"reward", "fitness", "user_size_mean", "item_size_max"} <= set(trials)
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    sizes = np.load(out / "sizes_last_segment.npz")
    assert int(sizes["segment"]) == 3 and len(sizes["user_sizes"]) == len(sizes["user_freq"])

    model_file = out / ("model.json" if algo in BASELINES else "model.zip")
    env = gym.make("Scall-Synthetic-v0", device="cpu", **env_kwargs)
    loaded = load_agent(algo, model_file, env)
    obs = np.clip(np.stack([env.observation_space.sample() for _ in range(4)]), -5, 5)
    if algo != "random":  # the saved agent is the trained one, not merely a stable file
        (agent,) = trained
        np.testing.assert_array_equal(
            loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0]
        )


def test_saved_scall_model_predicts_like_the_trained_one(tmp_path: Path, tiny_env: gym.Env) -> None:
    model = ScallSAC(env=tiny_env, seed=0, device="cpu")
    model.learn(total_timesteps=3)
    model.save(tmp_path / "m.zip")
    loaded = ScallSAC.load(tmp_path / "m.zip", env=tiny_env, device="cpu")
    obs = np.stack([tiny_env.observation_space.sample() for _ in range(5)])
    np.testing.assert_allclose(
        model.predict(obs, deterministic=True)[0], loaded.predict(obs, deterministic=True)[0]
    )
    assert loaded.actor.optimizer.param_groups[0]["lr"] == pytest.approx(2e-4)
    assert isinstance(loaded.actor.optimizer, ClippedAdam)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--algo", "dqn"], "invalid choice: 'dqn'"),
        (["--algo", "sac", "--env", "CartPole-v9"], "unknown env 'CartPole-v9'"),
        (["--algo", "sac", "--env-kwargs", "{nope"], "not valid JSON"),
        (["--algo", "sac", "--env-kwargs", "[1]"], "expected a JSON object"),
        (["--algo", "sac", "--total-timesteps", "0"], "expected an integer >= 1, got 0"),
        (["--algo", "sac", "--config", "missing.yaml"], "missing.yaml does not exist"),
    ],
)
def test_train_agent_bad_arguments(
    argv: list[str], message: str, train_agent: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main([*argv, "--env", "Scall-Synthetic-v0"] if "--env" not in argv else argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_train_agent_bad_env_kwargs_fail_before_training(
    train_agent: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--algo", "uniform", "--env", "Scall-Synthetic-v0", "--save-path", str(tmp_path),
            "--env-kwargs", '{"budget_type": "GB"}']  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        train_agent.main(argv)
    assert exit_info.value.code == 2
    assert "budget_type must be one of" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # nothing trained, nothing written


@pytest.mark.parametrize(
    ("algo", "options", "message"),
    [
        ("random-search", {"env_kwargs": {"commit": "last"}}, r"random-search sets the env "
         r"keyword\(s\) commit itself \(commit='best'\); leave them out of env_kwargs"),
        ("fixed", {"hyperparams": {"action": [0, 0, 2]}}, "fixed action must have shape"),
        ("frequency", {"hyperparams": {"beta": -1}}, "beta must be a finite number >= 0"),
        ("uniform", {"hyperparams": {"beta": 1}}, "unknown hyper-parameter.* for uniform"),
        ("sac", {"hyperparams": {"gama": 0.9}}, r"unknown hyper-parameter\(s\) gama for sac; "
         "allowed: action_noise, batch_size"),
        ("uniform", {"hyperparams": {"seed": 1}}, "seed for uniform is set by the run"),
        ("uniform", {"total_timesteps": 7, "commit_only": True}, "a commit without trials "
         r"counts as 5 steps .* multiple of 5, got 7 \(or let the baseline run its trials"),
        ("frequency", {"env_kwargs": {"sizer": FrequencySizer(0.7)}}, r"frequency sets the env "
         r"keyword\(s\) sizer itself \(sizer='FrequencySizer\(beta=0.5\)'\)"),
    ],
)  # fmt: skip
def test_run_settings_refuse_what_the_agent_would_refuse(
    algo: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        agents.settings.run_settings(algo, "Scall-Synthetic-v0", **options)


def test_a_one_segment_stream_is_refused_for_what_it_is(tmp_path: Path) -> None:
    env_kwargs = {**TINY_ENV, "n_segments": 1, "cache_dir": str(tmp_path / "cache")}
    with pytest.raises(ValueError, match=r"it has 1 segment\(s\), and a search needs two or more"):
        agents.harness.run_agent(
            "uniform", "Scall-Synthetic-v0", run_dir=tmp_path / "run", env_kwargs=env_kwargs
        )


def test_a_commit_only_baseline_refuses_steps_that_are_no_whole_number_of_commits(
    tmp_path: Path,
) -> None:
    env = ScallMonitor(gym.make("Scall-Synthetic-v0", **TINY_ENV, cache_dir=tmp_path))
    agent = make_agent("uniform", env, {}, seed=0)
    env.unwrapped.set_commit_policy(live_policy(agent))  # as run_agent does
    cost = constant_policy_trials(env.unwrapped.config)  # search_steps of TINY_ENV: 2
    with pytest.raises(ValueError, match=rf"counts as {cost} steps .* multiple of {cost}, got 3"):
        agent.learn(total_timesteps=3, commit_only=True)
    agent.learn(total_timesteps=2 * cost, commit_only=True)  # whole commits: accepted
    assert agent.num_timesteps == 2 * cost


def test_run_settings_accept_what_the_agent_would_do_anyway() -> None:
    settings = agents.settings.run_settings
    same = [
        settings("frequency", "Scall-Synthetic-v0", env_kwargs={"sizer": FrequencySizer(0.5)})
        for _ in range(2)
    ]  # the same sizer asked for again: accepted, and the same fingerprint every time
    assert same[0] == same[1] and same[0]["env_kwargs"]["sizer"] == "FrequencySizer(beta=0.5)"
    assert settings("uniform", "Scall-Synthetic-v0", env_kwargs={"sizer": UniformSizer()})
    assert settings("uniform", "Scall-Synthetic-v0", total_timesteps=10, commit_only=True)


def test_the_bounded_progress_rule_is_in_the_fingerprint_only_where_it_acts() -> None:
    def entry(**env_kwargs: Any) -> Any:
        return agents.settings.run_settings(
            "scall", "Scall-Synthetic-v0", env_kwargs=env_kwargs
        ).get("bounded_progress")

    assert entry(observation="bounded", search="adaptive") == "max_trials"
    assert entry(observation="bounded", search="fixed") is None
    assert entry(observation="paper", search="adaptive") is None


def test_bad_sb3_hyperparameter_values_are_value_errors() -> None:
    env = gym.make("Scall-Synthetic-v0", **TINY_ENV)
    with pytest.raises(ValueError, match=r"bad hyper-parameters for sac .*learning rate"):
        make_agent("sac", env, {"learning_rate": "abc"})


def test_train_agent_help_is_complete(train_agent: ModuleType) -> None:
    text = train_agent.build_parser().format_help()
    for option in ("--algo", "--env", "--env-kwargs", "--config", "--seed", "--total-timesteps",
                   "--tensorboard-log", "--save-path", "--device"):  # fmt: skip
        assert option in text
    assert train_agent.__doc__.splitlines()[0] in text  # the module docstring is the description


# ------------------------------------------------- scripts/ shims and console entry points
@pytest.mark.parametrize(
    ("script", "module", "option"),
    [("train_agent", scall_cli.train, "--algo"), ("compare", scall_cli.compare, "--resume")],
)
def test_script_shim_runs_the_module(script: str, module: ModuleType, option: str) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / f"{script}.py"), "--help"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert f"usage: {script}.py" in out.stdout and option in out.stdout
    assert module.__doc__.splitlines()[0] in out.stdout


@pytest.mark.parametrize(
    ("name", "module"), [("scall-train", scall_cli.train), ("scall-compare", scall_cli.compare)]
)
def test_console_script_is_installed(name: str, module: ModuleType) -> None:
    (point,) = entry_points(group="console_scripts", name=name)
    assert point.load() is module.main
    search = os.pathsep.join([sysconfig.get_path("scripts"), os.environ.get("PATH", "")])
    assert shutil.which(name, path=search), f"{name} is not installed; run pip install -e ."


# --------------------------------------------------------------------------- compare.py
def test_compare_writes_tables_and_plots(
    compare: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tiny.yaml"
    env_kwargs = {**TINY_ENV, "cache_dir": str(tmp_path / "cache"), "device": "cpu"}
    config.write_text(
        "env: Scall-Synthetic-v0\n"
        f"env_kwargs: {json.dumps(env_kwargs)}\n"
        "agents: [uniform, frequency, fixed]\n"
        "seeds: [0, 1]\n"
        "budgets: [6, 8]\n"
        f"output: {tmp_path / 'out'}\n"
    )
    assert compare.main(["--config", str(config), "--no-progress"]) == 0
    out = tmp_path / "out"
    for name in ("results.md", "summary.csv", "segments.csv", "recall_per_segment.png",
                 "size_vs_rank.png", "params_vs_budget.png"):  # fmt: skip
        assert (out / name).stat().st_size > 0, name
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6  # 2 budgets x 3 agents
    assert {"avg_recall@20_mean", "avg_recall@20_std", "avg_ndcg@20_mean",
            "params_over_budget_max", "recall@20_seg1_mean"} <= set(summary)  # fmt: skip
    assert (summary["params_over_budget_max"] <= 1.0).all()
    segments = pd.read_csv(out / "segments.csv")
    assert len(segments) == 2 * 3 * 2 * 4  # budgets x agents x seeds x segments
    report = (out / "results.md").read_text()
    assert "| budget | agent | runs | Recall@20 | NDCG@20 |" in report and "±" in report

    # --resume reads the finished runs back instead of training again; one seed aggregates too
    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("a finished run was trained again")

    monkeypatch.setattr(compare, "run_agent", no_training)
    argv = ["--config", str(config), "--no-progress", "--resume", "--seeds", "0"]
    assert compare.main([*argv, "--output", str(out)]) == 0
    single = pd.read_csv(out / "summary.csv")
    assert len(single) == 6 and single["avg_recall@20_std"].isna().all()
    assert re.search(
        r"\| uniform \| 1 \| \d\.\d{4} \| \d\.\d{4} \|", (out / "results.md").read_text()
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--env", "Scall-Synthetic-v0"], "name the environment and the agents"),
        (["--env", "Nope-v0", "--agents", "uniform"], "unknown env 'Nope-v0'"),
        (["--env", "Scall-Synthetic-v0", "--agents", "dqn"], "invalid choice: 'dqn'"),
        (["--config", "missing.yaml"], "missing.yaml does not exist"),
        (["--env-kwargs", "[1]"], "expected a JSON object"),
        (["--total-timesteps", "0"], "expected an integer >= 1, got 0"),
    ],
)
def test_compare_bad_arguments(
    argv: list[str], message: str, compare: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        compare.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_compare_rejects_unknown_config_keys(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("env: Scall-Synthetic-v0\nagents: [uniform]\nseed: 3\n")
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--config", str(config)])
    assert exit_info.value.code == 2
    assert "unknown keys ['seed']" in capsys.readouterr().err


@pytest.mark.parametrize(
    "path",
    sorted((ROOT / "configs").glob("*.yaml"))
    + sorted((ROOT / "configs" / "ablation").glob("*.yaml")),
    ids=lambda path: path.name,
)
def test_shipped_comparison_configs_are_valid(
    path: Path, compare: ModuleType, tmp_path: Path
) -> None:
    config = compare.load_config(path)
    assert config["env"] in gym.registry
    compare.check_config(config)
    # every run resolves: env keywords, hyper-parameter names, budgets (nothing is loaded)
    runs = compare.plan_runs(config, tmp_path)
    budgets = config.get("budgets") or [None]
    assert len(runs) == len(budgets) * len(config["agents"]) * len(config["seeds"])


def test_misspelt_hyperparameter_is_refused_before_any_run(
    compare: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "env: Scall-Synthetic-v0\nagents: [uniform, sac]\nhyperparams: {sac: {lerning_rate: 1}}\n"
    )
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--config", str(config), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "unknown hyper-parameter(s) lerning_rate for sac; allowed: " in capsys.readouterr().err
    assert not (tmp_path / "out" / "runs").exists()
