"""The committed comparisons under ``results/`` are exactly what ``scall-compare`` makes from their
committed run files, so the tables (and the README that quotes them) cannot drift from the data;
and ``--report-only`` makes the tables of a comparison that has not finished yet."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from scall_cli import compare

ROOT = Path(__file__).resolve().parents[1]
COMMITTED = sorted((ROOT / "results").glob("**/comparison.yaml"))
TABLES = ("results.md", "summary.csv", "segments.csv", "statistics.csv")
# what a committed run keeps (.gitignore leaves models, checkpoints and event files out)
RUN_FILES = ("results.json", "segments.csv", "trials.csv", "sizes_last_segment.npz")
TINY_ENV = {
    "dataset_options": {"n_users": 300, "n_items": 200, "n_interactions": 8_000},
    "n_segments": 3,
    "d_max": 16,
    "n_groups": 8,
    "trial_batches": 5,
    "batch_size": 128,
    "max_chunks": 2,
    "device": "cpu",
}


def copy_runs(source: Path, target: Path) -> None:
    """Copies the committed files of every run under ``source/runs`` to ``target/runs``."""
    for path in (source / "runs").glob("**/*"):
        if path.name in RUN_FILES:
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)


def test_the_committed_comparisons_are_found() -> None:
    assert ROOT / "results" / "quickstart" / "comparison.yaml" in COMMITTED


@pytest.mark.parametrize(
    "config", COMMITTED, ids=lambda path: str(path.parent.relative_to(ROOT / "results"))
)
def test_committed_tables_are_remade_from_the_committed_runs(config: Path, tmp_path: Path) -> None:
    # no data needed: the runs' settings and files are all that the tables are made from
    copy_runs(config.parent, tmp_path)
    argv = ["--config", str(config), "--output", str(tmp_path), "--report-only", "--no-progress"]
    assert compare.main(argv) == 0
    for name in TABLES:
        assert (tmp_path / name).read_text() == (config.parent / name).read_text(), name


def write_config(tmp_path: Path, seeds: list[int]) -> Path:
    config = tmp_path / f"seeds{len(seeds)}.yaml"
    env_kwargs = {**TINY_ENV, "cache_dir": str(tmp_path / "cache")}
    config.write_text(
        "env: Scall-Synthetic-v0\n"
        f"env_kwargs: {json.dumps(env_kwargs)}\n"
        "agents: [fixed, uniform]\n"
        f"seeds: {seeds}\n"
        f"output: {tmp_path / 'out'}\n"
    )
    return config


def test_report_only_remakes_the_tables_and_lists_unfinished_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    one_seed = write_config(tmp_path, [0])
    assert compare.main(["--config", str(one_seed), "--no-progress"]) == 0
    made = {name: (out / name).read_text() for name in TABLES}
    assert yaml.safe_load((out / compare.COMPARISON_FILE).read_text())["seeds"] == [0]

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("--report-only ran a run")

    monkeypatch.setattr(compare, "run_agent", no_training)
    # the tables made while running are those made from the files the runs left
    for name in TABLES:
        (out / name).unlink()
    assert compare.main(["--config", str(one_seed), "--report-only"]) == 0
    assert {name: (out / name).read_text() for name in TABLES} == made

    # a comparison asked for more runs than have finished: the finished ones, the others listed
    two_seeds = write_config(tmp_path, [0, 1])
    assert compare.main(["--config", str(two_seeds), "--report-only"]) == 0
    report = (out / "results.md").read_text()
    assert "Not finished yet (2 runs): fixed/seed1, uniform/seed1." in report
    assert "| default | fixed | 1 |" in report
    assert yaml.safe_load((out / compare.COMPARISON_FILE).read_text())["seeds"] == [0, 1]

    # nothing finished in the output folder: a clear error, no tables
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--config", str(two_seeds), "--report-only", "--output", str(tmp_path / "x")])
    assert exit_info.value.code == 2
    assert "no run of this comparison has finished in" in capsys.readouterr().err
    assert not (tmp_path / "x" / "results.md").exists()


def test_command_line_budgets_name_the_same_run_folders_as_a_config() -> None:
    assert [compare.budget_value(text) for text in ("32", "32.0", "0.5")] == [32, 32, 0.5]
    assert isinstance(compare.budget_value("32.0"), int)
    with pytest.raises(ValueError):
        compare.budget_value("big")
