"""EnvConfig: one validated settings object for every keyword of gym.make."""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
import torch

from scall_env.config import EnvConfig
from scall_env.env import ScallEnv
from scall_env.sizing import Budget, DistributionSizer, UniformSizer


def test_defaults_are_the_papers() -> None:
    config = EnvConfig()
    assert config.parameter_budget == Budget("c", 32)
    assert (config.d_max, config.search_steps, config.trial_batches) == (256, 11, 200)
    assert config.train_config.chunk_batches == 200 and config.train_config.lr == 0.03
    assert config.stream_config.n_segments == 10 and config.stream_config.k_core == 10
    assert isinstance(config.make_sizer(), DistributionSizer)
    assert config.commit == "auto" and config.reward_bounds == (0.9, 1.1)


def test_numpy_integers_are_accepted_and_stored_as_int() -> None:
    config = EnvConfig(n_segments=np.int64(4), k_core=np.int32(2), stream_seed=np.int64(3))
    assert config.n_segments == 4 and type(config.n_segments) is int
    assert config.stream_config.cache_key("fingerprint")  # hashable settings


def test_views_follow_the_fields() -> None:
    sizer = UniformSizer()
    config = EnvConfig(
        budget_type="B", budget=2.5, trial_batches=7, batch_size=64, sizer=sizer, use_cache=False
    )
    assert config.parameter_budget.params(10, 10) == 625_000
    assert config.train_config.chunk_batches == 7 and config.train_config.batch_size == 64
    assert config.make_sizer() is sizer
    assert config.cache_folder is None
    assert config.device == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert EnvConfig(device="cpu").device == torch.device("cpu")
    flush = EnvConfig(flush_denormals=np.False_, use_cache=np.True_)  # numpy bools become bools
    assert flush.flush_denormals is False and flush.train_config.flush_denormals is False
    assert flush.use_cache is True


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 2.5}, "batch_size must be an integer >= 1, got 2.5"),
        ({"n_segments": True}, "n_segments must be an integer >= 1"),
        ({"stream_seed": -1}, "stream_seed must be an integer >= 0"),
        ({"reward_bounds": (1.0,)}, r"reward_bounds .* \(expected two numbers"),
        ({"reward_bounds": "ab"}, "reward_bounds must be finite"),
        ({"reward_bounds": (0.5, float("inf"))}, "reward_bounds must be finite"),
        ({"sizer": object()}, r"sizer must implement scall_env.sizing.Sizer"),
        ({"commit_policy": 3}, "commit_policy must be a callable"),
        ({"commit": "median"}, r"commit must be one of \('auto', 'policy'"),
        ({"lr": "fast"}, "lr must be a real number"),
        ({"budget": "32"}, "budget must be a real number"),
        ({"dataset_options": [1]}, "dataset_options must be a dict"),
        ({"device": "gpu0"}, "invalid device 'gpu0'"),
        ({"replay_ratio": 1.5}, r"replay_ratio must be in \[0, 1\]"),
        ({"flush_denormals": "no"}, "flush_denormals must be True or False, got 'no'"),
        ({"use_cache": "false"}, "use_cache must be True or False, got 'false'"),
        ({"cache_dir": 3}, "cache_dir must be a path or None, got 3"),
        ({"data_dir": 3}, "data_dir must be a path or None, got 3"),
        ({"dataset": "nope"}, "unknown dataset 'nope'; choose one of ml-1m, ml-100k"),
        ({"dataset_options": {"colour": 1}}, r"unknown option\(s\) colour .* allowed: path"),
        ({"search": "greedy"}, r"search must be one of \('adaptive', 'fixed'\)"),
        ({"trial_sizing": "approx"}, r"trial_sizing must be one of \('paper', 'exact'\)"),
        ({"ratio_base": "x"}, "ratio_base must be one of"),
        ({"observation": "raw"}, r"observation must be one of \('paper', 'bounded'\)"),
        ({"search_tolerance": float("nan")}, "search_tolerance must be a finite real number"),
        ({"search_tolerance": -0.1}, "search_tolerance must be >= 0, got -0.1"),
        ({"lr": float("inf")}, "lr must be a finite real number, got inf"),
        ({"l2_reg": float("nan")}, "l2_reg must be a finite real number, got nan"),
        (
            {"segmentation": "time", "time_window": "x"},
            "segmentation='time' needs a finite time_window > 0 seconds, got 'x'",
        ),
        (
            {"search_steps": 5, "search_max_steps": 3},
            r"search_max_steps \(3\) must be >= search_steps \(5\)",
        ),
    ],
)
def test_bad_settings_are_refused_at_construction(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        EnvConfig(**kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        ScallEnv(**kwargs)  # the env refuses them before loading anything


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="asks for CUDA, which is not available"):
        ScallEnv(device="cuda")


def test_unknown_keyword_names_the_allowed_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown ScallEnv arguments \['n_segment'\]; allowed"):
        ScallEnv(n_segment=3)


def test_every_keyword_is_documented_in_the_env_docstring() -> None:
    doc = inspect.getdoc(ScallEnv) or ""
    for name in EnvConfig.keywords():
        assert f"``{name}``" in doc, name
