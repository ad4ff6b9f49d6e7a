"""Tests of scall_env.data: registry, MovieLens (checksums, downloads), delimited files, real data.

The review (JSON lines) and synthetic sources are tested in test_data_sources.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import io
import os
import urllib.error
import zipfile
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pytest

import scall_env.cache
from scall_env import data
from scall_env.data import (
    COLUMNS,
    DATASETS,
    MOVIELENS,
    ChecksumError,
    DatasetNotFoundError,
    Interactions,
    check_dataset,
    default_cache_dir,
    default_data_dir,
    load_interactions,
    movielens,
    synthetic_interactions,
)

ROWS = [(3, 20, 4, 978300760), (1, 10, 5, 978300100), (3, 10, 1, 978301000), (2, 30, 3, 978300100)]
"""(user, item, rating, timestamp), deliberately not in time order."""


def movielens_bytes(dataset: str, rows: list[tuple[int, int, int, int]] = ROWS) -> bytes:
    """Ratings file content in a MovieLens release's format."""
    sep = {"ml-1m": "::", "ml-100k": "\t"}[dataset]
    return "".join(sep.join(map(str, row)) + "\n" for row in rows).encode()


def trust(monkeypatch: pytest.MonkeyPatch, dataset: str, raw: bytes, zip_raw: bytes = b"") -> None:
    """Make ``raw`` (and ``zip_raw``) the official content of a MovieLens release."""
    source = dataclasses.replace(
        MOVIELENS[dataset],
        file_md5=hashlib.md5(raw).hexdigest(),
        zip_md5=hashlib.md5(zip_raw).hexdigest(),
    )
    monkeypatch.setitem(MOVIELENS, dataset, source)


def zip_bytes(dataset: str, raw: bytes) -> bytes:
    """An archive laid out like the official zip, holding ``raw`` as the ratings file."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(f"{dataset}/README", "readme")
        archive.writestr(f"{dataset}/{MOVIELENS[dataset].filename}", raw)
    return buffer.getvalue()


def expected_frame(rows: list[tuple[int, int, int, int]] = ROWS) -> pd.DataFrame:
    """The frame a loader must return for ``rows``."""
    users, items, ratings, times = zip(*rows, strict=True)
    return pd.DataFrame(
        {
            "user": np.array(users, dtype=np.int64),
            "item": np.array(items, dtype=np.int64),
            "rating": np.array(ratings, dtype=np.float32),
            "timestamp": np.array(times, dtype=np.int64),
        }
    )


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keep tests off the network and out of the real cache folder; return the cache folder."""

    def no_network(url: str, out: BinaryIO) -> None:
        raise urllib.error.URLError("network disabled in tests")

    monkeypatch.setattr(movielens, "_fetch", no_network)
    cache = tmp_path / "cache"
    monkeypatch.setenv("SCALL_CACHE_DIR", str(cache))
    return cache


# --------------------------------------------------------------------------------------------
# folders and dispatch


def test_default_dirs_follow_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SCALL_DATA_DIR", raising=False)
    assert default_cache_dir() == tmp_path / "cache"
    assert default_data_dir() == tmp_path / "cache"
    monkeypatch.setenv("SCALL_DATA_DIR", str(tmp_path / "data"))
    assert default_data_dir() == tmp_path / "data"
    monkeypatch.delenv("SCALL_CACHE_DIR")
    assert default_cache_dir() == Path.home() / ".cache" / "scall"


def test_unknown_dataset_lists_all() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'nope'") as info:
        load_interactions("nope")
    assert all(name in str(info.value) for name in DATASETS)


@pytest.mark.parametrize(
    ("dataset", "allowed"),
    [("ml-1m", "path, download"), ("yelp", "path"), ("synthetic", "n_users"), ("delimited", "sep")],
)
def test_unknown_option_names_allowed(dataset: str, allowed: str) -> None:
    with pytest.raises(TypeError, match="unknown option") as info:
        load_interactions(dataset, colour="red")
    assert "colour" in str(info.value)
    assert allowed in str(info.value)


def test_check_dataset_loads_nothing() -> None:
    check_dataset("ml-1m", {"path": "/nowhere/ratings.dat"})  # only names are checked
    with pytest.raises(ValueError, match="unknown dataset 'ml-2m'; choose one of ml-1m"):
        check_dataset("ml-2m", {})
    with pytest.raises(TypeError, match="unknown option.* colour for dataset 'yelp'"):
        check_dataset("yelp", {"colour": 1})


def test_public_names() -> None:
    assert sorted(data.__all__) == sorted(
        [
            "COLUMNS",
            "DATASETS",
            "MOVIELENS",
            "ChecksumError",
            "check_dataset",
            "DatasetNotFoundError",
            "Interactions",
            "MovieLensSource",
            "default_cache_dir",
            "default_data_dir",
            "load_interactions",
            "synthetic_interactions",
        ]
    )
    assert all(hasattr(data, name) for name in data.__all__)
    assert data.default_cache_dir is scall_env.cache.default_cache_dir
    assert DATASETS == ("ml-1m", "ml-100k", "yelp", "amazon-book", "delimited", "synthetic")


@pytest.mark.parametrize("dataset", DATASETS)
def test_declared_options_are_the_loader_parameters(dataset: str) -> None:
    """The registry refuses exactly the options the loader itself would not take."""
    loader = data._LOADERS[dataset]
    function = synthetic_interactions if dataset == "synthetic" else loader.load
    parameters = [name for name in inspect.signature(function).parameters if name != "data_dir"]
    assert loader.options == tuple(parameters)


def test_unknown_option_message_lists_every_allowed_option() -> None:
    with pytest.raises(TypeError) as info:
        load_interactions("delimited", path="x.csv", colour="red", size=3)
    assert str(info.value) == (
        "unknown option(s) colour, size for dataset 'delimited'; "
        "allowed: path, sep, user_col, item_col, time_col, rating_col, header"
    )


# --------------------------------------------------------------------------------------------
# MovieLens


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-100k"])
@pytest.mark.parametrize("layout", ["flat", "subfolder", "zip", "zip-in-subfolder"])
def test_movielens_layouts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dataset: str, layout: str
) -> None:
    raw = movielens_bytes(dataset)
    trust(monkeypatch, dataset, raw)
    filename = MOVIELENS[dataset].filename
    target = {
        "flat": tmp_path / filename,
        "subfolder": tmp_path / dataset / filename,
        "zip": tmp_path / f"{dataset}.zip",
        "zip-in-subfolder": tmp_path / dataset / f"{dataset}.zip",
    }[layout]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(zip_bytes(dataset, raw) if layout.startswith("zip") else raw)

    loaded = load_interactions(dataset, tmp_path)

    assert isinstance(loaded, Interactions)
    assert loaded.name == dataset
    pd.testing.assert_frame_equal(loaded.frame, expected_frame())
    assert list(loaded.frame.columns) == list(COLUMNS)
    # the fingerprint depends on content only, not on where or how the file was stored
    assert loaded.fingerprint == load_interactions(dataset, path=target).fingerprint


def test_movielens_data_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    raw = movielens_bytes("ml-1m")
    trust(monkeypatch, "ml-1m", raw)
    (tmp_path / "ratings.dat").write_bytes(raw)
    monkeypatch.setenv("SCALL_DATA_DIR", str(tmp_path))
    pd.testing.assert_frame_equal(load_interactions("ml-1m").frame, expected_frame())


def test_movielens_fingerprint_tracks_content(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fingerprints = []
    for rows in (ROWS, ROWS[:3]):
        raw = movielens_bytes("ml-1m", rows)
        trust(monkeypatch, "ml-1m", raw)
        (tmp_path / "ratings.dat").write_bytes(raw)
        fingerprints.append(load_interactions("ml-1m", tmp_path).fingerprint)
    assert fingerprints[0] != fingerprints[1]


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-100k"])
def test_movielens_checksum_mismatch_names_file(tmp_path: Path, dataset: str) -> None:
    target = tmp_path / MOVIELENS[dataset].filename
    raw = movielens_bytes(dataset)
    target.write_bytes(raw)
    with pytest.raises(ChecksumError) as info:
        load_interactions(dataset, tmp_path)
    message = str(info.value)
    assert str(target) in message
    assert MOVIELENS[dataset].file_md5 in message
    assert hashlib.md5(raw).hexdigest() in message


@pytest.mark.parametrize("in_zip", [False, True])
def test_truncated_ratings_never_half_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, in_zip: bool
) -> None:
    raw = movielens_bytes("ml-1m")
    trust(monkeypatch, "ml-1m", raw)
    truncated = raw[: len(raw) // 2]
    if in_zip:
        target = tmp_path / "ml-1m.zip"
        target.write_bytes(zip_bytes("ml-1m", truncated))
    else:
        target = tmp_path / "ratings.dat"
        target.write_bytes(truncated)
    with pytest.raises(ValueError, match="md5") as info:
        load_interactions("ml-1m", tmp_path)
    assert str(target) in str(info.value)


def test_corrupt_zip_names_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trust(monkeypatch, "ml-1m", movielens_bytes("ml-1m"))
    target = tmp_path / "ml-1m.zip"
    target.write_bytes(zip_bytes("ml-1m", movielens_bytes("ml-1m"))[:-40])
    with pytest.raises(ValueError, match="not a valid zip") as info:
        load_interactions("ml-1m", tmp_path)
    assert str(target) in str(info.value)


def test_zip_without_ratings(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ml-1m/movies.dat", "1::Toy Story::Animation\n")
    (tmp_path / "ml-1m.zip").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="holds no ratings.dat"):
        load_interactions("ml-1m", tmp_path)


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-100k"])
def test_download_into_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: Path, dataset: str
) -> None:
    raw = movielens_bytes(dataset)
    archive = zip_bytes(dataset, raw)
    trust(monkeypatch, dataset, raw, archive)
    fetched = []

    def fake_fetch(url: str, out: BinaryIO) -> None:
        fetched.append(url)
        out.write(archive)

    monkeypatch.setattr(movielens, "_fetch", fake_fetch)
    empty = tmp_path / "empty"
    empty.mkdir()

    loaded = load_interactions(dataset, empty)

    assert fetched == [MOVIELENS[dataset].url]
    pd.testing.assert_frame_equal(loaded.frame, expected_frame())
    assert sorted(path.name for path in offline.iterdir()) == [f"{dataset}.zip"]
    umask = os.umask(0)
    os.umask(umask)
    assert (offline / f"{dataset}.zip").stat().st_mode & 0o777 == 0o666 & ~umask
    # found in the cache next time: no second download
    assert load_interactions(dataset, empty).fingerprint == loaded.fingerprint
    assert len(fetched) == 1


def test_download_with_bad_checksum_keeps_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: Path
) -> None:
    raw = movielens_bytes("ml-1m")
    trust(monkeypatch, "ml-1m", raw, b"the real archive")
    monkeypatch.setattr(movielens, "_fetch", lambda url, out: out.write(zip_bytes("ml-1m", raw)))
    with pytest.raises(ChecksumError, match="download of https://files.grouplens.org"):
        load_interactions("ml-1m", tmp_path / "nowhere")
    assert list(offline.iterdir()) == []


@pytest.mark.parametrize("download", [True, False])
def test_offline_without_data_says_where_to_put_files(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, offline: Path, download: bool
) -> None:
    monkeypatch.delenv("SCALL_DATA_DIR", raising=False)
    data_dir = tmp_path / "data"
    with pytest.raises(DatasetNotFoundError) as info:
        load_interactions("ml-1m", data_dir, download=download)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    for needle in (
        str(data_dir / "ratings.dat"),
        str(data_dir / "ml-1m" / "ratings.dat"),
        str(data_dir / "ml-1m.zip"),
        str(offline / "ml-1m.zip"),
        "SCALL_DATA_DIR",
        MOVIELENS["ml-1m"].url,
    ):
        assert needle in message
    assert ("network disabled" in message) == download


def test_missing_explicit_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="no file at path"):
        load_interactions("ml-100k", path=tmp_path / "u.data")


def test_empty_ratings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    trust(monkeypatch, "ml-100k", b"")
    (tmp_path / "u.data").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        load_interactions("ml-100k", tmp_path)


# --------------------------------------------------------------------------------------------
# delimited files


def test_delimited_with_header(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("ts,who,what,score,extra\n30,b,x,2.5,q\n10,a,y,4,r\n")
    loaded = load_interactions(
        "delimited", path=path, user_col="who", item_col="what", time_col="ts", rating_col="score"
    )
    frame = loaded.frame
    assert loaded.name == "delimited"
    assert frame["user"].tolist() == ["b", "a"]
    assert frame["item"].tolist() == ["x", "y"]
    assert frame["rating"].tolist() == [2.5, 4.0]
    assert frame["timestamp"].tolist() == [30, 10]
    assert frame.dtypes.to_dict() == {
        "user": frame["user"].dtype,
        "item": frame["item"].dtype,
        "rating": np.float32,
        "timestamp": np.int64,
    }


def test_delimited_defaults_and_implicit_ratings(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\n1,7,100\n2,7,101.9\n")
    frame = load_interactions("delimited", path=path).frame
    pd.testing.assert_frame_equal(
        frame, expected_frame([(1, 7, 1, 100), (2, 7, 1, 101)]), check_exact=True
    )


@pytest.mark.parametrize("sep", ["\t", "::", ";"])
def test_delimited_without_header(tmp_path: Path, sep: str) -> None:
    path = tmp_path / "log.txt"
    path.write_text("".join(sep.join(map(str, row)) + "\n" for row in ROWS))
    frame = load_interactions(
        "delimited", path=path, sep=sep, header=False, rating_col=2, time_col=3
    ).frame
    pd.testing.assert_frame_equal(frame, expected_frame())


def test_delimited_fingerprint_tracks_options(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("a,b,c\n1,2,3\n2,1,4\n")
    one = load_interactions("delimited", path=path, user_col="a", item_col="b", time_col="c")
    two = load_interactions("delimited", path=path, user_col="b", item_col="a", time_col="c")
    assert one.fingerprint != two.fingerprint
    assert (
        one.fingerprint
        == load_interactions(
            "delimited", path=path, user_col="a", item_col="b", time_col="c"
        ).fingerprint
    )


def test_delimited_bad_columns_lists_columns(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("uid,iid,time\n1,2,3\n")
    with pytest.raises(ValueError, match="user_col='user', item_col='item'") as info:
        load_interactions("delimited", path=path, time_col="time")
    assert "['uid', 'iid', 'time']" in str(info.value)


def test_delimited_non_numeric_time(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\n1,2,3\n1,3,2020-01-01\n")
    with pytest.raises(ValueError, match="non-numeric timestamp '2020-01-01' in data row 1"):
        load_interactions("delimited", path=path)


def test_delimited_non_numeric_rating(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp,rating\n1,2,3,good\n")
    with pytest.raises(ValueError, match="non-numeric rating 'good'"):
        load_interactions("delimited", path=path, rating_col="rating")


@pytest.mark.parametrize("content", ["", "user,item,timestamp\n"])
def test_delimited_empty(tmp_path: Path, content: str) -> None:
    path = tmp_path / "log.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty"):
        load_interactions("delimited", path=path)


def test_delimited_ragged_rows_name_file(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text("user,item,timestamp\n1,2,3\n1,2,3,4,5\n")
    with pytest.raises(ValueError, match="cannot be parsed with sep=','") as info:
        load_interactions("delimited", path=path)
    assert str(path) in str(info.value)


INT64_MAX = str(2**63 - 1)


def test_delimited_ids_keep_leading_zeros_and_text(tmp_path: Path) -> None:
    path = tmp_path / "log.csv"
    path.write_text(f"user,item,timestamp\n007,{INT64_MAX},1\n7,-3,2\n0,0,{INT64_MAX}\n")
    frame = load_interactions("delimited", path=path).frame
    assert frame["user"].tolist() == ["007", "7", "0"]  # "007" and "7" are two users
    assert frame["item"].dtype == np.int64 and frame["item"].tolist() == [2**63 - 1, -3, 0]
    assert frame["timestamp"].tolist() == [1, 2, 2**63 - 1]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("timestamp", "1e20"),
        ("timestamp", "-1e20"),
        ("timestamp", str(2**63)),
        ("timestamp", str(2**64 - 1)),
        ("timestamp", "99999999999999999999"),
        ("user", str(2**63)),
        ("user", str(-(2**63) - 1)),
        ("item", str(2**64 - 1)),
        ("item", "99999999999999999999"),
        ("rating", "1e40"),
    ],
)
def test_delimited_values_beyond_their_type_are_refused(
    tmp_path: Path, column: str, value: str
) -> None:
    """Nothing wraps around: the message names the file, the column and the row."""
    path = tmp_path / "log.csv"
    row = {"user": "1", "item": "2", "timestamp": "3", "rating": "4"}
    path.write_text(
        "user,item,timestamp,rating\n1,1,1,1\n" + ",".join({**row, column: value}.values())
    )
    with pytest.raises(ValueError, match=f"column '{column}'.* outside the .* in data row 1") as e:
        load_interactions("delimited", path=path, rating_col="rating")
    assert str(path) in str(e.value)


def test_delimited_needs_path() -> None:
    with pytest.raises(ValueError, match="needs path="):
        load_interactions("delimited")


# --------------------------------------------------------------------------------------------
# real MovieLens files (set SCALL_DATA_DIR, e.g. to /work/shared/data)


def real_data_dir(relative: str) -> Path:
    """The folder named by SCALL_DATA_DIR, or skip when it lacks ``relative``."""
    root = os.environ.get("SCALL_DATA_DIR")
    if not root:
        pytest.skip("SCALL_DATA_DIR is not set")
    if not (Path(root) / relative).is_file():
        pytest.skip(f"{Path(root) / relative} is absent")
    return Path(root)


@pytest.mark.realdata
def test_real_ml_1m() -> None:
    loaded = load_interactions("ml-1m", real_data_dir("ml-1m/ratings.dat"), download=False)
    frame = loaded.frame
    assert len(frame) == 1_000_209
    assert frame["user"].nunique() == 6_040
    assert frame["item"].nunique() == 3_706
    assert frame.iloc[0].tolist() == [1, 1193, 5.0, 978300760]
    assert set(frame["rating"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}


@pytest.mark.realdata
def test_real_ml_100k() -> None:
    frame = load_interactions("ml-100k", real_data_dir("ml-100k/u.data"), download=False).frame
    assert len(frame) == 100_000
    assert frame["user"].nunique() == 943
    assert frame["item"].nunique() == 1_682
