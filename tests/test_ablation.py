"""The ablation table gathers one comparison folder per variant."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from scall_cli import ablation


def fake_comparison(
    folder: Path, recalls: dict[int, list[float]], trials: int, budgets: tuple = ("default",)
) -> None:
    """A finished comparison's segments.csv and results.json files (laid out as compare.py
    lays them out: ``runs/budget<b>/...`` when there are budgets)."""
    rows = []
    for budget in budgets:
        runs = folder / "runs" / ("" if budget == "default" else f"budget{budget}") / "scall"
        for seed, values in recalls.items():
            run = runs / f"seed{seed}"
            run.mkdir(parents=True)
            wall = 120.0 if budget == "default" else 60.0 * budget  # tells the runs apart
            summary = {"env_kwargs": {"search": "fixed", "device": "cpu"}, "wall_time_s": wall}
            (run / "results.json").write_text(json.dumps(summary))
            for segment, recall in enumerate(values):
                rows.append(
                    {"budget": budget, "agent": "scall", "seed": seed, "segment": segment,
                     "recall@20": recall, "ndcg@20": 2 * recall,
                     "trials": 0 if segment == 0 else trials}
                )  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "segments.csv", index=False)


def test_table_averages_segments_after_the_first(tmp_path: Path, capsys) -> None:
    # segment 0 (value 9) must not enter the averages
    fake_comparison(tmp_path / "fixed-search", {0: [9.0, 0.1, 0.3], 1: [9.0, 0.3, 0.5]}, 11)
    assert ablation.main([str(tmp_path)]) == 0
    table = (tmp_path / "table.md").read_text()
    assert capsys.readouterr().out == table
    row = table.splitlines()[2].split(" | ")
    assert row[0] == "| fixed-search" and row[1] == "scall"
    assert json.loads(row[2]) == {"search": "fixed"}
    assert row[3] == "2" and row[4] == "0.3000 ± 0.1414" and row[5] == "0.6000 ± 0.2828"
    assert row[6] == "11.0" and row[7].startswith("2.0")


def test_no_comparison_is_a_clear_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ablation.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "no finished comparison" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[1]


def copy_comparison(source: Path, target: Path) -> None:
    """What the table reads of a comparison: ``segments.csv`` and every run's ``results.json``."""
    for path in [source / "segments.csv", *source.glob("runs/**/results.json")]:
        (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target / path.relative_to(source))


def test_the_committed_ablation_table_is_remade_from_its_runs(tmp_path: Path) -> None:
    committed = ROOT / "results" / "ablation-ml1m-mf"
    for variant in committed.iterdir():
        if (variant / "segments.csv").exists():
            copy_comparison(variant, tmp_path / variant.name)
    assert ablation.main([str(tmp_path)]) == 0
    assert (tmp_path / "table.md").read_text() == (committed / "table.md").read_text()


def test_a_comparison_over_budgets_gets_a_row_per_budget_and_agent(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    copy_comparison(ROOT / "results" / "paper-ml100k", tmp_path / "paper")
    assert ablation.main([str(tmp_path)]) == 0
    rows = [line.split(" | ") for line in (tmp_path / "table.md").read_text().splitlines()[2:]]
    assert {(row[1], row[2]) for row in rows} == {
        (budget, agent)
        for budget in ("16", "32")
        for agent in ("scall", "sac", "td3", "uniform", "frequency", "random-search", "optuna")
    }
    assert all(row[4] == "3" for row in rows)  # seeds


@pytest.mark.parametrize(("make", "message"), [(None, "is no folder"), ("file", "is no folder")])
def test_a_root_that_is_no_folder_is_a_one_line_error(
    make: str | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "root"
    if make == "file":
        root.write_text("")
    with pytest.raises(SystemExit) as exit_info:
        ablation.main([str(root)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"error: {root} {message}" in err and len(err.strip().splitlines()) == 1


def test_fractional_budgets_read_their_own_runs(tmp_path: Path) -> None:
    fake_comparison(tmp_path / "budgets", {0: [9.0, 0.1, 0.3]}, 11, budgets=(8, 16.5))
    assert ablation.main([str(tmp_path)]) == 0
    rows = [line.split(" | ") for line in (tmp_path / "table.md").read_text().splitlines()[2:]]
    # budget, then run_minutes from that budget's own results.json (60 s x budget)
    assert [(row[1], row[-1].rstrip(" |")) for row in rows] == [("8.0", "8.0"), ("16.5", "16.5")]


def test_a_damaged_run_or_a_mix_of_layouts_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_comparison(tmp_path / "a", {0: [9.0, 0.1]}, 11)
    fake_comparison(tmp_path / "b", {0: [9.0, 0.1]}, 11, budgets=(8,))
    with pytest.raises(SystemExit) as exit_info:
        ablation.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert "mix of comparisons with and without budgets" in capsys.readouterr().err
    shutil.rmtree(tmp_path / "b")
    (tmp_path / "a" / "runs" / "scall" / "seed0" / "results.json").write_text("{not json")
    with pytest.raises(SystemExit) as exit_info:
        ablation.main([str(tmp_path)])
    assert exit_info.value.code == 2
    assert f"error: cannot read a comparison under {tmp_path}: " in capsys.readouterr().err
