"""Statistics of a comparison, checked against hand-made examples and scipy called directly."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sp

from agents.harness import RunResult
from agents.report import plot_sizes, write_report, write_statistics
from agents.stats import (
    N_RESAMPLES,
    holm,
    iqm,
    iqm_interval,
    paired_test,
    statistics_markdown,
    statistics_table,
)
from scall_env.sizing import assign_by_frequency


def segment_rows(recalls: list[float], **extra: float) -> list[dict[str, float]]:
    """Committed segments 0, 1, ...: segment 0 scores 1.0 (the statistics must leave it out),
    then ``recalls``; NDCG@20 is half of Recall@20; ``extra`` goes into every row."""
    return [
        {"segment": segment, "recall@20": recall, "ndcg@20": recall / 2, **extra}
        for segment, recall in enumerate([1.0, *recalls])
    ]


def segments_frame(values: dict[tuple[str, int], list[float]], budget: object = 8) -> pd.DataFrame:
    """A long table: ``values[(agent, seed)]`` is Recall@20 of segments 1, 2, ..."""
    return pd.DataFrame(
        [
            {"budget": budget, "agent": agent, "seed": seed, **row}
            for (agent, seed), recalls in values.items()
            for row in segment_rows(recalls)
        ]
    )


# ------------------------------------------------------------------------- the pieces
def test_iqm_is_the_mean_of_the_middle_half() -> None:
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)  # mean of 3, 4, 5, 6
    assert iqm(np.array([0.0, 1.0, 1.0, 100.0])) == pytest.approx(1.0)  # outliers cut off


def test_interval_is_scipys_percentile_bootstrap() -> None:
    values = np.array([0.10, 0.12, 0.08, 0.30, 0.11, 0.09, 0.13, 0.10])
    low, high = iqm_interval(values, seed=7)
    expected = sp.bootstrap(
        (values,),
        lambda x, axis: sp.trim_mean(x, 0.25, axis=axis),
        n_resamples=N_RESAMPLES,
        method="percentile",
        rng=np.random.default_rng(7),
    ).confidence_interval
    assert (low, high) == pytest.approx((expected.low, expected.high))
    assert values.min() <= low <= iqm(values) <= high <= values.max()
    assert iqm_interval(np.full(5, 0.2)) == pytest.approx((0.2, 0.2))
    assert all(math.isnan(bound) for bound in iqm_interval(np.array([0.2])))


def test_paired_test_matches_known_values() -> None:
    index = pd.MultiIndex.from_product([[0], [1, 2, 3, 4, 5]], names=["seed", "segment"])
    reference = pd.Series([2.0, 3.0, 4.0, 5.0, 6.0], index=index)
    other = pd.Series([1.0, 1.0, 1.0, 1.0, 1.0], index=index)
    # every difference positive: exact two-sided p = 2 / 2**5
    assert paired_test(reference, other) == pytest.approx((0.0625, 5, 3.0, ""))
    mixed = pd.Series([1.0, 4.0, 4.0, 1.0, 5.0], index=index)  # differences 1, -1, 0, 4, 1
    p_value, pairs, median, note = paired_test(reference, mixed)
    assert p_value == pytest.approx(sp.wilcoxon([1.0, -1.0, 0.0, 4.0, 1.0]).pvalue)
    assert (pairs, median, note) == (5, 1.0, "")


def test_paired_test_without_a_test() -> None:
    index = pd.MultiIndex.from_tuples([(0, 1), (0, 2)], names=["seed", "segment"])
    same = pd.Series([0.1, 0.2], index=index)
    p_value, pairs, median, note = paired_test(same, same.copy())
    assert math.isnan(p_value) and (pairs, median, note) == (2, 0.0, "every paired difference is 0")
    elsewhere = pd.Series([0.3], index=pd.MultiIndex.from_tuples([(0, 2)]))
    p_value, pairs, _, note = paired_test(same, elsewhere)  # one pair in common
    assert math.isnan(p_value) and pairs == 1 and "a test needs 2" in note


# ------------------------------------------------------------------------------- the table
def test_statistics_table_by_hand() -> None:
    scall = {("scall", 0): [0.4, 0.5, 0.6, 0.7], ("scall", 1): [0.5, 0.6, 0.7, 0.8]}
    uniform = {("uniform", 0): [0.3, 0.5, 0.4, 0.5], ("uniform", 1): [0.2, 0.4, 0.7, 0.6]}
    table = statistics_table(segments_frame({**scall, **uniform})).set_index("agent")
    assert list(table.index) == ["scall", "uniform"] and (table["samples"] == 8).all()
    recalls = [0.3, 0.5, 0.4, 0.5, 0.2, 0.4, 0.7, 0.6]  # uniform, seed 0 then seed 1
    # sorted 0.2 0.3 | 0.4 0.4 0.5 0.5 | 0.6 0.7: IQM 0.45
    assert table.loc["uniform", "recall@20_iqm"] == pytest.approx(0.45)
    assert table.loc["uniform", "ndcg@20_iqm"] == pytest.approx(0.225)
    low, high = iqm_interval(np.array(recalls))
    assert table.loc["uniform", ["recall@20_ci_low", "recall@20_ci_high"]].tolist() == [low, high]
    differences = [0.1, 0.0, 0.2, 0.2, 0.3, 0.2, 0.0, 0.2]
    assert table.loc["uniform", "p_value"] == pytest.approx(sp.wilcoxon(differences).pvalue)
    assert table.loc["uniform", "recall@20_diff_median"] == pytest.approx(0.2)
    assert table.loc["uniform", "pairs"] == 8 and table.loc["uniform", "note"] == ""
    assert math.isnan(table.loc["scall", "p_value"]) and table.loc["scall", "note"] == "reference"
    # one test in the budget: Holm leaves it as it is
    assert table.loc["uniform", "p_holm"] == table.loc["uniform", "p_value"]
    assert math.isnan(table.loc["scall", "p_holm"])


def test_holm_by_hand() -> None:
    # sorted 0.01 0.03 0.04 (m = 3): 3 * 0.01, 2 * 0.03, max(0.06, 1 * 0.04)
    np.testing.assert_allclose(
        holm(np.array([0.01, 0.04, 0.03, np.nan])), [0.03, 0.06, 0.06, np.nan]
    )
    np.testing.assert_allclose(holm(np.array([0.7, 0.9, np.nan])), [1.0, 1.0, np.nan])  # capped
    np.testing.assert_allclose(holm(np.array([0.02, 0.02])), [0.04, 0.04])  # ties
    assert holm(np.array([])).shape == (0,)


def test_holm_adjusts_each_budget_on_its_own() -> None:
    frame = pd.concat(
        segments_frame(
            {
                ("scall", 0): [0.5, 0.6, 0.7, 0.8, 0.6, 0.9],
                ("uniform", 0): [0.4, 0.5, 0.7, 0.6, 0.5, 0.6],
                ("fixed", 0): [0.3, 0.6, 0.5, 0.7, 0.4, 0.85],
            },
            budget=budget,
        )
        for budget in (8, 16)
    )
    table = statistics_table(frame)
    for _, rows in table.groupby("budget"):
        np.testing.assert_allclose(rows["p_holm"], holm(rows["p_value"].to_numpy()))
    assert (table["p_holm"].dropna() > table["p_value"].dropna()).all()  # two tests a budget
    text = statistics_markdown(table)
    assert "| p | p (Holm) |" in text and text.count("| (reference) | – |") == 2


def test_statistics_table_per_budget_and_without_the_reference() -> None:
    frame = pd.concat(
        [
            segments_frame({("scall", 0): [0.5, 0.6], ("uniform", 0): [0.5, 0.6]}, budget=8),
            segments_frame({("uniform", 0): [0.3], ("fixed", 0): [0.2]}, budget=16),
        ]
    )
    table = statistics_table(frame).set_index(["budget", "agent"])
    assert table.loc[(8, "uniform"), "note"] == "every paired difference is 0"
    for agent in ("uniform", "fixed"):
        row = table.loc[(16, agent)]
        assert row["note"] == "no scall runs to compare with" and row["pairs"] == 0
        assert math.isnan(row["p_value"]) and math.isnan(row["recall@20_ci_low"])  # 1 sample
    text = statistics_markdown(table.reset_index())
    assert "## Statistics" in text and "(no scall runs to compare with)" in text
    assert "| 8 | uniform | 2 | 0.5500 [0.5000, 0.6000] |" in text


def test_other_reference_agent() -> None:
    frame = segments_frame({("uniform", 0): [0.3, 0.4, 0.5], ("fixed", 0): [0.2, 0.3, 0.4]})
    table = statistics_table(frame, reference_agent="uniform").set_index("agent")
    assert table.loc["fixed", "recall@20_diff_median"] == pytest.approx(0.1)
    assert table.loc["fixed", "p_value"] == pytest.approx(sp.wilcoxon([0.1, 0.1, 0.1]).pvalue)


# --------------------------------------------------------------------------- the files
@pytest.mark.filterwarnings("ignore:No artists with labels")  # runs without saved sizes
def test_write_statistics_and_the_report(tmp_path: Path) -> None:
    values = {("scall", 0): [0.5, 0.6, 0.7], ("sac", 0): [0.4, 0.6, 0.5]}
    section = write_statistics(segments_frame(values), tmp_path)
    written = pd.read_csv(tmp_path / "statistics.csv")
    assert list(written["agent"]) == ["scall", "sac"] and section.startswith("## Statistics")
    assert (tmp_path / "intervals.png").stat().st_size > 0

    usage = {"params_used": 1, "budget_params": 1, "trials": 2}
    results = [
        (None, RunResult(agent, "x", seed, tmp_path, segment_rows(recalls, **usage), {}, 3, 1.0))
        for (agent, seed), recalls in values.items()
    ]
    report = write_report(results, {"env": "x", "agents": ["scall", "sac"], "seeds": [0]}, tmp_path)
    assert "## Statistics" in report and "| default | sac | 3 |" in report
    # per agent: one run, its wall time (1 s) and its trials (2 in each of 4 segments)
    assert "| default | sac | 1 | 0.5000 | 0.2500 | 1.0000 | 1 | 8 |" in report
    assert (tmp_path / "results.md").read_text() == report


@pytest.mark.filterwarnings("ignore:No artists with labels")
def test_a_report_killed_while_writing_leaves_whole_files_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {("scall", 0): [0.5, 0.6, 0.7], ("sac", 0): [0.4, 0.6, 0.5]}
    usage = {"params_used": 1, "budget_params": 1, "trials": 2}
    results = [
        (None, RunResult(agent, "x", seed, tmp_path, segment_rows(recalls, **usage), {}, 3, 1.0))
        for (agent, seed), recalls in values.items()
    ]
    config = {"env": "x", "agents": ["scall", "sac"], "seeds": [0]}
    write_report(results, config, tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def dies_half_way(fig: object, fname: object, **kwargs: object) -> None:
        Path(str(fname)).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr("matplotlib.figure.Figure.savefig", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        write_report(results, config, tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert after == before  # the same (whole) files, no temporary one beside them


def test_the_size_plot_ranks_entities_as_the_sizers_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # many equal counts (zeros among them): the sizers rank the newer entity (larger id) first
    rng = np.random.default_rng(0)
    freq = {kind: rng.integers(0, 3, size=50) for kind in ("user", "item")}
    sizes = {kind: assign_by_frequency(np.arange(50, 0, -1), freq[kind]) for kind in freq}
    last = {"segment": np.array(3)}
    for kind in freq:
        last.update({f"{kind}_freq": freq[kind], f"{kind}_sizes": sizes[kind]})
    result = RunResult("scall", "x", 0, tmp_path, segment_rows([0.5]), {}, 1, 1.0, last)
    figures: list[Any] = []
    monkeypatch.setattr("agents.report._save_figure", lambda fig, path: figures.append(fig))
    plot_sizes([(None, result)], tmp_path / "sizes.png")
    for ax in figures[0].axes:
        np.testing.assert_array_equal(ax.lines[0].get_ydata(), np.arange(50, 0, -1))


@pytest.mark.filterwarnings("ignore:No artists with labels")
def test_per_segment_tables_list_only_the_agents_that_ran_at_a_budget(tmp_path: Path) -> None:
    usage = {"params_used": 1, "budget_params": 1, "trials": 2}
    runs = [(8, "scall"), (8, "uniform"), (16, "uniform")]  # no scall run at budget 16
    results = [
        (budget, RunResult(agent, "x", 0, tmp_path, segment_rows([0.5, 0.6], **usage), {}, 3, 1.0))
        for budget, agent in runs
    ]
    config = {"env": "x", "agents": ["scall", "uniform"], "seeds": [0]}
    report = write_report(results, config, tmp_path)
    assert "nan" not in report
    for metric in ("recall@20", "ndcg@20"):
        section = report.split(f"{metric} per segment:")[1].split("\n\n")[1]
        rows = [line.split(" | ")[:2] for line in section.splitlines()[2:]]
        assert rows == [["| 8", "scall"], ["| 8", "uniform"], ["| 16", "uniform"]]
