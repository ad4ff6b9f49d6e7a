"""The ablation table gathers one comparison folder per variant."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scall_cli import ablation


def fake_comparison(folder: Path, recalls: dict[int, list[float]], trials: int) -> None:
    rows = []
    for seed, values in recalls.items():
        run = folder / "runs" / "scall" / f"seed{seed}"
        run.mkdir(parents=True)
        summary = {"env_kwargs": {"search": "fixed", "device": "cpu"}, "wall_time_s": 120.0}
        (run / "results.json").write_text(json.dumps(summary))
        for segment, recall in enumerate(values):
            rows.append(
                {"agent": "scall", "seed": seed, "segment": segment, "recall@20": recall,
                 "ndcg@20": 2 * recall, "trials": 0 if segment == 0 else trials}
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
