"""Golden run: the quick-start environment with fixed seeds gives the recorded trials and commits.

The expected CSVs under ``tests/data/golden/`` are what ``agents.harness.run_agent`` writes for
seed 0 and one pass over ``Scall-Synthetic-v0`` (``python -c`` over the four agents, as in this
test). They were first recorded before the env core was split into config, search core and
Gymnasium face, and the split reproduced them; they were recorded again, deliberately, when the
authors' protocol became the default (adaptive search, uncorrected trial sizes, the authors'
state, evaluation set, warm start and ties). Any other change of the protocol's numbers (seeds
drawn, sizes, training, rewards, commits) shows up here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from agents.factory import load_hyperparams
from agents.harness import run_agent

GOLDEN = Path(__file__).parent / "data" / "golden"
ENV_ID = "Scall-Synthetic-v0"


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("golden-cache")


def assert_same_table(found: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(found.columns) == list(expected.columns)
    assert len(found) == len(expected)
    for column in expected.columns:
        want, got = expected[column], found[column]
        if pd.api.types.is_numeric_dtype(want):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9, err_msg=column)
        else:  # the committed action: a JSON list per row, empty for segment 0
            for got_cell, want_cell in zip(got.fillna(""), want.fillna(""), strict=True):
                assert bool(got_cell) == bool(want_cell), column
                if want_cell:
                    got_values, want_values = json.loads(got_cell), json.loads(want_cell)
                    np.testing.assert_allclose(got_values, want_values, rtol=1e-6)


@pytest.mark.parametrize("algo", ["scall", "sac", "uniform", "frequency"])
def test_quickstart_run_matches_the_golden_files(
    algo: str, cache_dir: Path, tmp_path: Path
) -> None:
    run_agent(
        algo,
        ENV_ID,
        env_kwargs={"cache_dir": cache_dir},
        hyperparams=load_hyperparams(algo, ENV_ID),
        seed=0,
        device="cpu",
        run_dir=tmp_path,
    )
    for name in ("trials.csv", "segments.csv"):
        found, expected = pd.read_csv(tmp_path / name), pd.read_csv(GOLDEN / algo / name)
        assert_same_table(found, expected)
