"""SearchCore: the protocol without Gymnasium (start, trial, commit), its caches and its errors."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from _tiny import tiny_env

from scall_env.config import EnvConfig
from scall_env.recsys import Evaluator
from scall_env.search import SearchCore
from scall_env.sizing import SizeDecision

TINY = tiny_env(
    dataset="synthetic",
    base_model="mf",
    n_segments=3,
    budget=8,
    search_steps=2,
    max_chunks=3,
    device="cpu",
)
DECISION = SizeDecision(0.3, 0.2, 0.7)


def core(tmp_path: Path, **kwargs: Any) -> SearchCore:
    return SearchCore(EnvConfig(**{**TINY, **kwargs}, cache_dir=tmp_path))


def test_protocol_start_trial_commit(tmp_path: Path) -> None:
    search = core(tmp_path)
    with pytest.raises(RuntimeError, match="call reset"):
        search.trial(DECISION, seed=0)
    record = search.start(seed=1)
    assert record["segment"] == 0 and search.committed == [record] and not search.done
    assert (
        record["params_used"] <= record["budget_params"] == 8 * sum(search.stream.entity_counts(0))
    )
    trial = search.trial(DECISION, seed=2)
    assert trial.segment == 0 and search.segment_index == 0  # a trial commits nothing
    independent = Evaluator(search.segment(0), device="cpu").evaluate(trial.model)
    assert trial.metrics == pytest.approx(independent)
    assert trial.fitness == pytest.approx((independent["recall@20"] + independent["ndcg@20"]) / 2)
    # unequal alphas: users follow alpha_user (0.2, skewed), items alpha_item (0.7, flatter)
    users, items = trial.sizes.user_sizes, trial.sizes.item_sizes
    assert users.max() / users.mean() > items.max() / items.mean()
    commit = search.commit(DECISION, model_seed=3, train_seed=4, action=[0.1, 0.2, 0.3])
    assert commit["segment"] == 1 and search.segment_index == 1
    assert commit["action"] == pytest.approx([0.1, 0.2, 0.3])
    assert search.reference == commit["reference_fitness"]
    search.commit(DECISION, model_seed=5, train_seed=6)
    assert search.done
    with pytest.raises(RuntimeError, match="every segment is already committed"):
        search.commit(DECISION, model_seed=7, train_seed=8)


def test_same_seeds_same_results(tmp_path: Path) -> None:
    first, second = core(tmp_path / "a"), core(tmp_path / "b")
    assert first.start(seed=1) == second.start(seed=1)
    assert first.trial(DECISION, seed=9).metrics == second.trial(DECISION, seed=9).metrics
    assert first.trial(DECISION, seed=9).metrics != first.trial(DECISION, seed=10).metrics


def test_segment0_is_cached_on_disk_and_verified(tmp_path: Path) -> None:
    record = core(tmp_path).start(seed=1)
    files = list((tmp_path / "segment0").glob("*.pt"))
    assert len(files) == 1
    again = core(tmp_path)
    assert again.start(seed=1) == record  # served from the disk cache
    # a damaged file is rebuilt with a warning naming it, and gives the same result
    payload = torch.load(files[0], weights_only=True)
    next(iter(payload["state"].values())).view(-1)[0] += 1.0
    torch.save(payload, files[0])
    with pytest.warns(RuntimeWarning, match="checksum does not match"):
        assert core(tmp_path).start(seed=1) == record
    files[0].write_bytes(b"not a torch file")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        assert core(tmp_path).start(seed=1) == record


def test_another_configuration_put_in_place_is_not_served(tmp_path: Path) -> None:
    core(tmp_path).start(seed=1)
    other = core(tmp_path, budget=9)
    (file_a,) = (tmp_path / "segment0").glob("*.pt")
    path_b = other._model_cache.path(other._segment0_settings(1))
    path_b.write_bytes(file_a.read_bytes())
    with pytest.warns(RuntimeWarning, match="made with other settings"):
        record = other.start(seed=1)
    assert record["budget_params"] == 9 * sum(other.stream.entity_counts(0))


def test_diverging_training_is_an_error_and_caches_nothing(tmp_path: Path) -> None:
    search = core(tmp_path, lr=1e30)
    with pytest.raises(RuntimeError, match="segment 0: training diverged: non-finite loss"):
        search.start(seed=1)
    assert not list((tmp_path / "segment0").glob("*.pt"))


def test_unwritable_cache_folder_warns_once_and_works(tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    search = SearchCore(EnvConfig(**TINY, cache_dir=tmp_path))
    search._model_cache.folder = blocked / "segment0"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = search.start(seed=1)
        search.start(seed=2)  # a second entry to write: no second warning, no cache
    (warning,) = [w for w in caught if "continuing without it" in str(w.message)]
    assert f"cannot write the model cache in {blocked / 'segment0'}" in str(warning.message)
    assert search._model_cache.folder is None
    assert np.isfinite(record["fitness"])
