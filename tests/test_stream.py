"""The stream protocol: filtering, renumbering, segmentation, replay, splits, frequencies, cache."""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scall_env.data import Interactions
from scall_env.stream import (
    Stream,
    StreamConfig,
    build_stream,
    k_core_filter,
    load_stream,
    segment_bounds,
)

DATA_DIR = os.environ.get("SCALL_DATA_DIR")


def random_interactions(
    n_users: int = 120, n_items: int = 60, n: int = 4000, seed: int = 0
) -> Interactions:
    """Unique (user, item) pairs with string labels and shuffled, partly tied timestamps."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, n_users, size=n)
    items = np.minimum(rng.zipf(1.6, size=n) - 1, n_items - 1)
    frame = pd.DataFrame(
        {
            "user": np.char.add("u", users.astype(str)),
            "item": np.char.add("i", items.astype(str)),
            "rating": np.ones(n, np.float32),
            "timestamp": rng.integers(0, n // 3, size=n),
        }
    ).drop_duplicates(["user", "item"], ignore_index=True)
    return Interactions(frame=frame, name="toy", fingerprint=f"toy-{seed}-{n}")


@pytest.fixture(scope="module")
def toy() -> Interactions:
    return random_interactions()


@pytest.fixture(scope="module")
def stream(toy: Interactions) -> Stream:
    return build_stream(toy, StreamConfig(k_core=3, n_segments=5))


def test_k_core_filter_is_iterated() -> None:
    # user 2 has one interaction; dropping it leaves item 2 with two, below k=3
    users = np.array([0, 0, 0, 1, 1, 1, 2, 3, 3, 3, 0])
    items = np.array([0, 1, 2, 0, 1, 2, 2, 0, 1, 3, 3])
    keep = k_core_filter(users, items, 3)
    kept_users, kept_items = users[keep], items[keep]
    assert 2 not in kept_users and 2 not in kept_items and 3 not in kept_items
    assert np.all(np.bincount(kept_users)[np.unique(kept_users)] >= 3)
    assert np.all(np.bincount(kept_items)[np.unique(kept_items)] >= 3)


def test_filter_keeps_k_core(stream: Stream) -> None:
    assert np.bincount(stream.users).min() >= 3
    assert np.bincount(stream.items).min() >= 3


def test_time_sorted_and_renumbered_by_first_appearance(toy: Interactions, stream: Stream) -> None:
    assert np.all(np.diff(stream.timestamps) >= 0)
    for ids in (stream.users, stream.items):
        first = np.unique(ids, return_index=True)[1]
        assert np.all(np.diff(first) > 0)  # id k appears first after id k-1
        assert ids[0] == 0
    # labels map back to the original pairs, in a stable time order
    original = set(zip(toy.frame["user"], toy.frame["item"], strict=True))
    pairs = zip(stream.user_labels[stream.users], stream.item_labels[stream.items], strict=True)
    assert set(pairs) <= original


def test_stable_sort_keeps_file_order_of_ties() -> None:
    frame = pd.DataFrame(
        {"user": [5, 6, 7, 5], "item": [1, 1, 2, 2], "rating": 1.0, "timestamp": [3, 1, 1, 9]}
    )
    s = build_stream(Interactions(frame, "ties", "ties"), StreamConfig(k_core=1, n_segments=1))
    assert list(s.user_labels) == [6, 7, 5]
    assert list(s.item_labels) == [1, 2]


def test_equal_count_segments(stream: Stream) -> None:
    sizes = np.diff(stream.bounds)
    assert len(sizes) == 5 and sizes.sum() == stream.n_interactions
    assert sizes.max() - sizes.min() <= 1


def test_new_entity_segments(toy: Interactions) -> None:
    threshold = 70
    s = build_stream(
        toy, StreamConfig(k_core=3, segmentation="new_entities", new_entity_threshold=threshold)
    )
    assert s.n_segments == 3
    seen = np.maximum.accumulate(s.users) + np.maximum.accumulate(s.items) + 2
    before = np.r_[0, seen[s.bounds[1:-1] - 1]]
    new_per_segment = seen[s.bounds[1:] - 1] - before
    assert np.all(new_per_segment <= threshold)
    # each cut happens exactly when the next interaction would exceed the threshold
    assert np.all(seen[s.bounds[1:-1]] - before[:-1] > threshold)


@pytest.mark.parametrize(
    ("threshold", "bounds"),
    [(1, [0, 1, 2, 3, 4, 6, 7]), (2, [0, 1, 3, 6, 7]), (4, [0, 3, 7]), (8, [0, 7])],
)
def test_new_entity_threshold_below_one_interaction_terminates(
    threshold: int, bounds: list[int]
) -> None:
    """One interaction can bring a new user and a new item (2 arrivals). The interaction that
    pushes a segment past the threshold starts the next one; when a segment's own first
    interaction already does (threshold 1), the segment is that one interaction: no endless loop.
    """
    users = np.array([0, 1, 1, 2, 2, 2, 3], dtype=np.int32)
    items = np.array([0, 1, 0, 2, 1, 0, 3], dtype=np.int32)  # arrivals 2, 2, 0, 2, 0, 0, 2
    config = StreamConfig(segmentation="new_entities", new_entity_threshold=threshold)
    assert segment_bounds(users, items, np.arange(7), config).tolist() == bounds


def test_tiny_threshold_on_a_real_sized_stream_fails_fast(toy: Interactions) -> None:
    config = StreamConfig(k_core=3, segmentation="new_entities", new_entity_threshold=1)
    with pytest.raises(ValueError, match="segment 0 of .* too few for both a training part"):
        build_stream(toy, config)


def test_time_window_segments(toy: Interactions) -> None:
    s = build_stream(toy, StreamConfig(k_core=3, segmentation="time", time_window=300.0))
    window = (s.timestamps - s.timestamps[0]) // 300
    for t in range(s.n_segments):
        assert len(np.unique(window[s.bounds[t] : s.bounds[t + 1]])) == 1
    assert len(np.unique(window)) == s.n_segments == 5


def test_replay_draws_only_past_interactions_of_active_users(stream: Stream) -> None:
    assert len(stream.replay[0]) == 0
    for t in range(1, stream.n_segments):
        start, end = stream.bounds[t], stream.bounds[t + 1]
        replay = stream.replay[t]
        assert len(replay) == int(0.2 * (end - start))
        assert len(np.unique(replay)) == len(replay)
        assert replay.max() < start
        assert np.isin(stream.users[replay], stream.users[start:end]).all()


def test_replay_is_seeded(toy: Interactions) -> None:
    a = build_stream(toy, StreamConfig(k_core=3, n_segments=5, seed=1))
    b = build_stream(toy, StreamConfig(k_core=3, n_segments=5, seed=1))
    c = build_stream(toy, StreamConfig(k_core=3, n_segments=5, seed=2))
    assert all(np.array_equal(x, y) for x, y in zip(a.replay, b.replay, strict=True))
    assert not all(np.array_equal(x, y) for x, y in zip(a.replay, c.replay, strict=True))


def test_split_and_no_test_leak(stream: Stream) -> None:
    for seg in stream:
        t = seg.index
        start, end = stream.bounds[t], stream.bounds[t + 1]
        length = seg.n_replay + (end - start)
        assert seg.n_train == int(0.8 * length)
        assert seg.train_graph.multiply(seg.test).nnz == 0
        # ids are prefixes: the training graph uses every user and item below n_users / n_items
        assert np.all(np.diff(seg.train_graph.indptr) > 0)
        assert np.all(np.bincount(seg.train_graph.indices, minlength=seg.n_items) > 0)
        # test is the tail of D_t, restricted to training entities
        own_train = seg.n_train - seg.n_replay
        tail_users = stream.users[start + own_train : end]
        tail_items = stream.items[start + own_train : end]
        known = (tail_users < seg.n_users) & (tail_items < seg.n_items)
        assert seg.n_test == known.sum()
        assert seg.test[tail_users[known], tail_items[known]].min() == 1
        # the authors' evaluation set: candidates are the known test items whoever the user;
        # test users are the known test users whether or not any of their items is known
        known_items = tail_items < seg.n_items
        known_users = tail_users < seg.n_users
        np.testing.assert_array_equal(seg.candidate_items, np.unique(tail_items[known_items]))
        np.testing.assert_array_equal(seg.test_users, np.unique(tail_users[known_users]))
        # the training graph is everything before the segment plus the training part
        expected = start + own_train
        assert seg.train_graph.nnz == expected


def test_frequencies_and_current(stream: Stream) -> None:
    for seg in stream:
        t = seg.index
        start = stream.bounds[t]
        own_train = seg.n_train - seg.n_replay
        train = np.r_[stream.replay[t], np.arange(start, start + own_train)]
        np.testing.assert_array_equal(
            seg.user_freq, np.bincount(stream.users[train], minlength=seg.n_users)
        )
        np.testing.assert_array_equal(
            seg.item_freq, np.bincount(stream.items[train], minlength=seg.n_items)
        )
        np.testing.assert_array_equal(
            np.asarray(seg.current.sum(axis=1)).ravel() > 0, seg.user_freq > 0
        )
        np.testing.assert_array_equal(seg.active_users, np.flatnonzero(seg.user_freq))
        np.testing.assert_array_equal(seg.active_items, np.flatnonzero(seg.item_freq))


def test_segment_index_errors(stream: Stream) -> None:
    with pytest.raises(IndexError, match=r"out of range \[0, 5\)"):
        stream.segment(5)
    with pytest.raises(IndexError, match=r"segment index -1 is out of range"):
        stream.entity_counts(-1)


def test_entity_counts_without_building(toy: Interactions) -> None:
    fresh = build_stream(toy, StreamConfig(k_core=3, n_segments=5))
    counts = [fresh.entity_counts(t) for t in range(5)]
    assert not fresh._segments  # nothing was materialised
    assert counts == [(seg.n_users, seg.n_items) for seg in fresh]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"segmentation": "weekly"}, "segmentation='weekly' is not supported"),
        ({"n_segments": 0}, "n_segments must be an integer >= 1"),
        ({"k_core": 1.5}, "k_core must be an integer >= 1"),
        ({"replay_ratio": 1.5}, r"replay_ratio must be in \[0, 1\]"),
        ({"train_fraction": 1.0}, r"train_fraction must be in the open interval \(0, 1\)"),
        ({"segmentation": "time"}, "needs a finite time_window > 0"),
    ],
)
def test_bad_config(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StreamConfig(**kwargs)


def test_empty_input() -> None:
    empty = pd.DataFrame({"user": [], "item": [], "rating": [], "timestamp": []})
    with pytest.raises(ValueError, match="has no interactions"):
        build_stream(Interactions(empty, "empty", "e"), StreamConfig())


def test_nothing_survives_filter(toy: Interactions) -> None:
    with pytest.raises(ValueError, match="survives the 500-core filter"):
        build_stream(toy, StreamConfig(k_core=500))


def test_too_many_segments(toy: Interactions) -> None:
    with pytest.raises(ValueError, match="too few for both a training part"):
        build_stream(toy, StreamConfig(k_core=3, n_segments=1000))
    with pytest.raises(ValueError, match="larger than the"):
        build_stream(toy, StreamConfig(k_core=3, n_segments=10**7))


def test_save_load_roundtrip(stream: Stream, tmp_path: Path) -> None:
    stream.save(tmp_path / "s.npz")
    loaded = Stream.load(tmp_path / "s.npz")
    assert loaded.config == stream.config and loaded.fingerprint == stream.fingerprint
    for name in ("users", "items", "timestamps", "bounds", "user_labels", "item_labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(stream, name))
    a, b = loaded.segment(3), stream.segment(3)
    assert (a.train_graph != b.train_graph).nnz == 0 and (a.test != b.test).nnz == 0


def test_cache_invalidation(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []
    fingerprint = {"value": "v1"}

    def fake_load(dataset: str, data_dir: object = None, **options: object) -> Interactions:
        calls.append(1)
        toy = random_interactions(seed=3)
        return Interactions(toy.frame, "toy", fingerprint["value"])

    monkeypatch.setattr("scall_env.stream.load_interactions", fake_load)
    config = StreamConfig(k_core=3, n_segments=4)
    first = load_stream("toy", config=config, cache_dir=tmp_path)
    files = sorted((tmp_path / "streams").glob("*.npz"))
    assert len(files) == 1
    again = load_stream("toy", config=config, cache_dir=tmp_path)
    np.testing.assert_array_equal(again.users, first.users)
    assert len(list((tmp_path / "streams").glob("*.npz"))) == 1  # reused
    load_stream("toy", config=StreamConfig(k_core=3, n_segments=4, seed=9), cache_dir=tmp_path)
    assert len(list((tmp_path / "streams").glob("*.npz"))) == 2  # changed setting
    fingerprint["value"] = "v2"
    load_stream("toy", config=config, cache_dir=tmp_path)
    assert len(list((tmp_path / "streams").glob("*.npz"))) == 3  # changed source
    # a corrupt cache file is rebuilt, not trusted
    files[0].write_bytes(files[0].read_bytes()[:100])
    fingerprint["value"] = "v1"
    with pytest.warns(RuntimeWarning, match="rebuilding the stream"):
        rebuilt = load_stream("toy", config=config, cache_dir=tmp_path)
    np.testing.assert_array_equal(rebuilt.users, first.users)
    assert Stream.load(files[0]).n_interactions == first.n_interactions


@pytest.mark.parametrize("differs", ["configuration", "source fingerprint"])
def test_cache_file_of_another_stream_is_rebuilt(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, differs: str
) -> None:
    """A valid cache file of stream A copied onto the path of stream B is not served as B."""
    toy = random_interactions(seed=3)
    source = {"fingerprint": "v1"}

    def fake_load(dataset: str, data_dir: object = None, **options: object) -> Interactions:
        return Interactions(toy.frame, "toy", source["fingerprint"])

    monkeypatch.setattr("scall_env.stream.load_interactions", fake_load)
    config_a = StreamConfig(k_core=3, n_segments=4)
    config_b = StreamConfig(k_core=3, n_segments=5) if differs == "configuration" else config_a
    load_stream("toy", config=config_a, cache_dir=tmp_path)
    (file_a,) = (tmp_path / "streams").glob("*.npz")
    if differs == "source fingerprint":
        source["fingerprint"] = "v2"
    wanted = load_stream("toy", config=config_b, cache_dir=tmp_path)
    (file_b,) = set((tmp_path / "streams").glob("*.npz")) - {file_a}
    shutil.copyfile(file_a, file_b)

    with pytest.warns(RuntimeWarning, match="rebuilding the stream") as record:
        loaded = load_stream("toy", config=config_b, cache_dir=tmp_path)

    message = str(record[0].message)
    assert str(file_b) in message and f"another {differs}" in message
    assert (loaded.config, loaded.fingerprint) == (config_b, source["fingerprint"])
    for name in ("users", "items", "bounds", "user_labels", "item_labels"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(wanted, name))
    assert all(np.array_equal(x, y) for x, y in zip(loaded.replay, wanted.replay, strict=True))
    # the rebuilt stream took the file's place: served again without a warning
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_stream("toy", config=config_b, cache_dir=tmp_path)
    assert (again.config, again.fingerprint) == (config_b, source["fingerprint"])


def test_numpy_settings_share_the_cache_of_python_ones(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toy = random_interactions(seed=3)
    monkeypatch.setattr("scall_env.stream.load_interactions", lambda dataset, **options: toy)
    plain = StreamConfig(k_core=3, n_segments=4, replay_ratio=0.25, seed=1)
    numpy = StreamConfig(
        k_core=np.int64(3), n_segments=np.int32(4), replay_ratio=np.float64(0.25), seed=np.int64(1)
    )
    assert numpy.cache_key("toy") == plain.cache_key("toy")
    first = load_stream("toy", config=numpy, cache_dir=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = load_stream("toy", config=plain, cache_dir=tmp_path)
    assert len(list((tmp_path / "streams").glob("*.npz"))) == 1
    np.testing.assert_array_equal(again.users, first.users)


def test_corrupt_file_error_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="bad.npz"):
        Stream.load(bad)


ML1M_USERS = [561, 1265, 1965, 2523, 3114, 3890, 4739, 5282, 5855, 6038]
ML1M_ITEMS = [2884, 3069, 3149, 3177, 3242, 3253, 3257, 3258, 3258, 3260]


def _real(dataset: str, filename: str) -> Path:
    if not DATA_DIR or not (Path(DATA_DIR) / dataset / filename).exists():
        pytest.skip(f"{dataset}/{filename} not under $SCALL_DATA_DIR ({DATA_DIR!r})")
    return Path(DATA_DIR)


@pytest.mark.realdata
def test_movielens_1m_matches_the_paper_protocol(tmp_path: Path) -> None:
    data_dir = _real("ml-1m", "ratings.dat")
    stream = load_stream("ml-1m", data_dir=data_dir, cache_dir=tmp_path)
    assert (stream.n_users, stream.n_items, stream.n_interactions) == (6040, 3260, 998_539)
    stats = stream.stats()["segments"]
    assert [row["n_users"] for row in stats] == ML1M_USERS
    assert [row["n_items"] for row in stats] == ML1M_ITEMS


@pytest.mark.realdata
def test_movielens_100k_stream(tmp_path: Path) -> None:
    data_dir = _real("ml-100k", "u.data")
    stream = load_stream("ml-100k", data_dir=data_dir, cache_dir=tmp_path)
    assert stream.n_segments == 10
    users = [seg.n_users for seg in stream]
    assert users == sorted(users) and users[-1] <= stream.n_users
    assert all(seg.n_test > 0 for seg in stream)
