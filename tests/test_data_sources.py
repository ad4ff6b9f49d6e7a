"""Tests of scall_env.data's review (JSON lines) and synthetic sources (split from test_data.py)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scall_env.data import DatasetNotFoundError, load_interactions, reviews, synthetic_interactions


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep tests out of the real cache and data folders."""
    monkeypatch.setenv("SCALL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SCALL_DATA_DIR", raising=False)


# --------------------------------------------------------------------------------------------
# JSON-lines reviews

YELP_RECORDS = [
    {
        "review_id": "r1",
        "user_id": "u-b",
        "business_id": "0042",
        "stars": 4.0,
        "date": "2016-01-02 10:00:00",
        "text": "line one\nline two",
    },
    {
        "review_id": "r2",
        "user_id": "u-a",
        "business_id": "b-1",
        "stars": 5,
        "date": "2015-12-31 23:59:59",
        "text": "",
    },
    {
        "review_id": "r3",
        "user_id": "u-b",
        "business_id": "b-1",
        "stars": 1.0,
        "date": "2017-06-01 00:00:01",
        "text": "{}",
    },
]

AMAZON_RECORDS = [
    {
        "reviewerID": "A1",
        "asin": "000100039X",
        "overall": 5.0,
        "unixReviewTime": 1_100_000_000,
        "style": {"Format:": " Paperback"},
    },
    {"reviewerID": "A2", "asin": "0001000391", "overall": 3.0, "unixReviewTime": 1_000_000_000},
]


def write_lines(path: Path, records: list[dict[str, object]]) -> Path:
    """Write records as JSON lines (gzip-compressed when the name ends in .gz)."""
    text = "".join(json.dumps(record) + "\n" for record in records).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text) if path.suffix == ".gz" else text)
    return path


def test_yelp(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "reviews.json", YELP_RECORDS)
    loaded = load_interactions("yelp", path=path)
    frame = loaded.frame
    assert loaded.name == "yelp"
    assert frame["user"].tolist() == ["u-b", "u-a", "u-b"]
    assert frame["item"].tolist() == ["0042", "b-1", "b-1"]
    assert frame["rating"].dtype == np.float32
    assert frame["rating"].tolist() == [4.0, 5.0, 1.0]
    assert frame["timestamp"].dtype == np.int64
    expected = [pd.Timestamp(record["date"], tz="UTC").timestamp() for record in YELP_RECORDS]
    assert frame["timestamp"].tolist() == expected


def test_yelp_found_in_data_dir_and_blocks_agree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_lines(tmp_path / "yelp" / "yelp_academic_dataset_review.json", YELP_RECORDS * 50)
    whole = load_interactions("yelp", tmp_path)
    monkeypatch.setattr(reviews, "_JSON_BLOCK_BYTES", 100)
    blocks = load_interactions("yelp", tmp_path)
    pd.testing.assert_frame_equal(whole.frame, blocks.frame)
    assert len(whole.frame) == 150
    assert whole.fingerprint == blocks.fingerprint


@pytest.mark.parametrize("name", ["Books_5.json", "amazon-book/reviews_Books_5.json.gz"])
def test_amazon_book(tmp_path: Path, name: str) -> None:
    write_lines(tmp_path / name, AMAZON_RECORDS)
    frame = load_interactions("amazon-book", tmp_path).frame
    assert frame["user"].tolist() == ["A1", "A2"]
    assert frame["item"].tolist() == ["000100039X", "0001000391"]  # leading zeros kept
    assert frame["timestamp"].tolist() == [1_100_000_000, 1_000_000_000]
    assert frame["timestamp"].dtype == np.int64


def test_json_fingerprint_tracks_content(tmp_path: Path) -> None:
    one = load_interactions("amazon-book", path=write_lines(tmp_path / "a.json", AMAZON_RECORDS))
    two = load_interactions("amazon-book", path=write_lines(tmp_path / "b.json", AMAZON_RECORDS))
    three = load_interactions(
        "amazon-book", path=write_lines(tmp_path / "c.json", AMAZON_RECORDS[:1])
    )
    assert one.fingerprint == two.fingerprint != three.fingerprint


def test_json_not_found_lists_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="path=") as info:
        load_interactions("yelp", tmp_path)
    assert str(tmp_path / "yelp_academic_dataset_review.json") in str(info.value)


def test_json_missing_field_lists_fields(tmp_path: Path) -> None:
    records = [{key: value for key, value in AMAZON_RECORDS[1].items() if key != "asin"}]
    path = write_lines(tmp_path / "a.json", records)
    with pytest.raises(ValueError, match="lack field.* asin") as info:
        load_interactions("amazon-book", path=path)
    assert "reviewerID" in str(info.value)


def test_json_non_numeric_time(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.json", [{**AMAZON_RECORDS[1], "unixReviewTime": "soon"}])
    with pytest.raises(ValueError, match="non-numeric timestamp 'soon'") as info:
        load_interactions("amazon-book", path=path)
    assert "unixReviewTime" in str(info.value)


def test_yelp_bad_date(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "y.json", [*YELP_RECORDS, {**YELP_RECORDS[0], "date": "later"}])
    with pytest.raises(ValueError, match="unparsable date 'later' in data row 3"):
        load_interactions("yelp", path=path)


def test_json_missing_value(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "a.json", [AMAZON_RECORDS[0], {**AMAZON_RECORDS[1], "asin": None}]
    )
    with pytest.raises(ValueError, match="missing value"):
        load_interactions("amazon-book", path=path)


def test_json_invalid(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"reviewerID": "A1", "asin"\n')
    with pytest.raises(ValueError, match="not valid JSON lines") as info:
        load_interactions("amazon-book", path=path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"\n\n"])
def test_json_empty(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.json"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="empty"):
        load_interactions("yelp", path=path)


@pytest.mark.parametrize(("field", "value"), [("unixReviewTime", 1e20), ("reviewerID", 2**63)])
def test_json_values_beyond_int64_are_refused(tmp_path: Path, field: str, value: object) -> None:
    first = {**AMAZON_RECORDS[0], "reviewerID": 1}  # integer ids: the column is read as integers
    path = write_lines(tmp_path / "a.json", [first, {**AMAZON_RECORDS[1], field: value}])
    with pytest.raises(ValueError, match=f"field '{field}'.* outside the int64 range.* row 1") as e:
        load_interactions("amazon-book", path=path)
    assert str(path) in str(e.value)


# --------------------------------------------------------------------------------------------
# synthetic streams


def k_core(frame: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` interactions."""
    while True:
        users = frame["user"].map(frame["user"].value_counts())
        items = frame["item"].map(frame["item"].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            return frame
        frame = frame[keep]


def test_synthetic_is_deterministic() -> None:
    one, two = synthetic_interactions(seed=3), synthetic_interactions(seed=3)
    pd.testing.assert_frame_equal(one.frame, two.frame)
    assert one.fingerprint == two.fingerprint
    other = synthetic_interactions(seed=4)
    assert not one.frame.equals(other.frame)
    assert one.fingerprint != other.fingerprint
    assert one.fingerprint != synthetic_interactions(seed=3, drift=0.0).fingerprint


def test_synthetic_through_load_interactions() -> None:
    direct = synthetic_interactions(n_users=50, n_items=40, n_interactions=500, seed=1)
    loaded = load_interactions("synthetic", n_users=50, n_items=40, n_interactions=500, seed=1)
    pd.testing.assert_frame_equal(direct.frame, loaded.frame)
    assert loaded.name == "synthetic"
    assert loaded.fingerprint == direct.fingerprint


def test_synthetic_defaults_are_a_usable_stream() -> None:
    frame = synthetic_interactions().frame
    assert len(frame) == 60_000
    assert frame.dtypes.to_dict() == {
        "user": np.int64,
        "item": np.int64,
        "rating": np.float32,
        "timestamp": np.int64,
    }
    assert not frame.duplicated(["user", "item"]).any()
    assert (np.diff(frame["timestamp"].to_numpy()) > 0).all()
    core = k_core(frame, 10)
    assert core["user"].nunique() > 0.8 * frame["user"].nunique()
    assert core["item"].nunique() > 0.8 * frame["item"].nunique()
    assert len(core) > 0.9 * len(frame)


def test_synthetic_entities_keep_arriving() -> None:
    frame = synthetic_interactions().frame
    for column in ("user", "item"):
        ids = frame[column].to_numpy()
        for start, stop in ((0.5, 0.75), (0.75, 1.0)):
            before = set(ids[: int(start * len(ids))])
            window = set(ids[int(start * len(ids)) : int(stop * len(ids))])
            assert len(window - before) >= 10, (column, start)


def test_synthetic_drift_favours_new_items() -> None:
    def late_item_rank(drift: float) -> float:
        frame = synthetic_interactions(drift=drift, seed=5).frame
        return float(frame["item"].iloc[-len(frame) // 4 :].mean())

    assert late_item_rank(5.0) > late_item_rank(0.0) + 50


@pytest.mark.parametrize("size", [1, 1_000, 100_000])
def test_synthetic_size_scales(size: int) -> None:
    frame = synthetic_interactions(
        n_users=max(50, size // 30), n_items=max(50, size // 60), n_interactions=size
    ).frame
    assert len(frame) == size
    assert not frame.duplicated(["user", "item"]).any()


@settings(max_examples=25, deadline=None)
@given(
    n_users=st.integers(1, 60),
    n_items=st.integers(1, 60),
    fill=st.floats(0.01, 0.3),
    user_exponent=st.floats(0, 1.5),
    item_exponent=st.floats(0, 1.5),
    drift=st.floats(0, 5),
    seed=st.integers(0, 2**32),
)
def test_synthetic_invariants(
    n_users: int,
    n_items: int,
    fill: float,
    user_exponent: float,
    item_exponent: float,
    drift: float,
    seed: int,
) -> None:
    """Rows, uniqueness, order and id ranges hold over realistic parameter ranges.

    (Extreme skew together with high density can make distinct pairs unreachable; that case
    fails with a clear error, tested separately.)
    """
    n_interactions = max(1, int(fill * n_users * n_items))
    frame = synthetic_interactions(
        n_users=n_users,
        n_items=n_items,
        n_interactions=n_interactions,
        user_exponent=user_exponent,
        item_exponent=item_exponent,
        drift=drift,
        seed=seed,
    ).frame
    assert len(frame) == n_interactions
    assert not frame.duplicated(["user", "item"]).any()
    assert (np.diff(frame["timestamp"].to_numpy()) > 0).all()
    assert frame["user"].between(0, n_users - 1).all()
    assert frame["item"].between(0, n_items - 1).all()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"n_interactions": 0}, "n_interactions must be a positive integer"),
        ({"n_users": 2.5}, "n_users must be a positive integer"),
        ({"drift": -1.0}, "drift must be a finite number >= 0, got -1.0"),
        ({"user_exponent": "abc"}, "user_exponent must be a finite number >= 0, got 'abc'"),
        ({"initial_items": 0.0}, r"initial_items must be a number in \(0, 1\]"),
        ({"initial_users": "half"}, r"initial_users must be a number in \(0, 1\], got 'half'"),
        ({"seed": None}, "seed must be a non-negative integer"),
        ({"n_users": 3, "n_items": 3, "n_interactions": 10}, "exceeds the 9 distinct"),
    ],
)
def test_synthetic_rejects_bad_parameters(options: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        synthetic_interactions(**options)  # type: ignore[arg-type]


def test_synthetic_too_dense_fails_clearly() -> None:
    with pytest.raises(ValueError, match="could not draw"):
        synthetic_interactions(n_users=20, n_items=20, n_interactions=400, user_exponent=3.0)
