"""From interactions to a segmented stream, exactly as SCALL's protocol prescribes.

Steps (see ``shared/spec/SCALL.md``, "The stream"):

1. k-core filter (iterated until every user and item has at least ``k`` interactions);
2. stable sort by timestamp, renumber users and items by first appearance (newer entities have
   larger ids);
3. cut into segments ``D_0..D_{T-1}`` by equal interaction counts, by a new-entity threshold, or by
   time windows;
4. for ``t >= 1`` draw a seeded uniform replay sample (``replay_ratio * |D_t|``) of earlier
   interactions of the users active in ``D_t``;
5. per segment, cut ``[replay; D_t]`` at ``train_fraction``: training graph = ``D_0..D_{t-1}``
   plus the training part; test = the rest, restricted to training users and items.

The processed stream is cached on disk (``.npz``, no pickles, written through
:func:`scall_env.cache.atomic_path`) under a key that hashes the source fingerprint and every
stream setting; a changed setting rebuilds, and a cache file that is unreadable or holds another
configuration or source is rebuilt with a warning. A cache folder that cannot be written costs one
warning; the stream is then served without being cached.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from scall_env.cache import atomic_path, canonical_json, default_cache_dir, digest
from scall_env.data import Interactions, load_interactions
from scall_env.segment import Segment

Segmentation = Literal["count", "new_entities", "time"]
SEGMENTATIONS: tuple[str, ...] = ("count", "new_entities", "time")
CACHE_FORMAT_VERSION = 1


@dataclass(frozen=True)
class StreamConfig:
    """Every setting that shapes a stream (all of them enter the cache key).

    Args:
        k_core: Minimum interactions per user and per item (iterated filter); 1 disables it.
        segmentation: ``"count"`` (``n_segments`` equal-count segments), ``"new_entities"``
            (a new segment whenever more than ``new_entity_threshold`` new users+items appeared),
            or ``"time"`` (windows of ``time_window`` seconds; empty windows are skipped).
        n_segments: Number of segments for ``"count"``.
        new_entity_threshold: New users+items per segment for ``"new_entities"``; the
            interaction that brings the total past it starts the next segment, and a segment
            holds at least one interaction (one interaction may bring two new entities).
        time_window: Window length in seconds for ``"time"``.
        replay_ratio: Replay sample size as a fraction of ``|D_t|`` (0 disables replay).
        train_fraction: Share of ``[replay; D_t]`` (in order) that trains; the rest tests.
        seed: Seed of the replay sampler.
    """

    k_core: int = 10
    segmentation: Segmentation = "count"
    n_segments: int = 10
    new_entity_threshold: int = 15_000
    time_window: float | None = None
    replay_ratio: float = 0.2
    train_fraction: float = 0.8
    seed: int = 0

    def __post_init__(self) -> None:
        if self.segmentation not in SEGMENTATIONS:
            raise ValueError(
                f"segmentation={self.segmentation!r} is not supported; use one of {SEGMENTATIONS}"
            )
        _check_int("k_core", self.k_core, low=1)
        _check_int("n_segments", self.n_segments, low=1)
        _check_int("new_entity_threshold", self.new_entity_threshold, low=1)
        _check_int("seed", self.seed, low=0)
        window = self.time_window
        if self.segmentation == "time" and not (
            isinstance(window, numbers.Real)
            and not isinstance(window, bool)
            and math.isfinite(window)
            and window > 0
        ):
            raise ValueError(
                "segmentation='time' needs a finite time_window > 0 seconds, "
                f"got {self.time_window!r}"
            )
        if not (np.isfinite(self.replay_ratio) and 0.0 <= self.replay_ratio <= 1.0):
            raise ValueError(f"replay_ratio must be in [0, 1], got {self.replay_ratio!r}")
        if not (np.isfinite(self.train_fraction) and 0.0 < self.train_fraction < 1.0):
            raise ValueError(
                f"train_fraction must be in the open interval (0, 1), got {self.train_fraction!r}"
            )

    def cache_key(self, fingerprint: str) -> str:
        """Hex digest of the source fingerprint and every setting (numpy values as Python ones)."""
        return digest({"version": CACHE_FORMAT_VERSION, "source": fingerprint, **asdict(self)})


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


@dataclass(eq=False)
class Stream:
    """A processed interaction stream: time-sorted, renumbered, segmented, with replay samples.

    Build one with :func:`build_stream` or :func:`load_stream`; take segments with
    :meth:`segment` (built on first use and kept) or by iterating.

    Attributes:
        name: Dataset name.
        config: The settings that produced it.
        fingerprint: Source fingerprint (the cache key hashes it with ``config``).
        users: Renumbered user id of each interaction, in time order (``int32``).
        items: Renumbered item id of each interaction, in time order (``int32``).
        timestamps: Timestamp of each interaction (``int64``).
        bounds: Segment ``t`` is ``[bounds[t], bounds[t+1])`` (``int64``, length ``T + 1``).
        replay: Per segment, sorted indices of the replayed earlier interactions (empty for t=0).
        user_labels: Original user id of each renumbered user.
        item_labels: Original item id of each renumbered item.
    """

    name: str
    config: StreamConfig
    fingerprint: str
    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    bounds: np.ndarray
    replay: list[np.ndarray]
    user_labels: np.ndarray
    item_labels: np.ndarray
    _segments: dict[int, Segment] = field(default_factory=dict, repr=False)

    @property
    def n_segments(self) -> int:
        """Number of segments ``T``."""
        return len(self.bounds) - 1

    @property
    def n_users(self) -> int:
        """Users after filtering."""
        return len(self.user_labels)

    @property
    def n_items(self) -> int:
        """Items after filtering."""
        return len(self.item_labels)

    @property
    def n_interactions(self) -> int:
        """Interactions after filtering."""
        return len(self.users)

    def __len__(self) -> int:
        return self.n_segments

    def __iter__(self) -> Iterator[Segment]:
        return (self.segment(t) for t in range(self.n_segments))

    def segment(self, t: int) -> Segment:
        """Segment ``t`` with its training graph, test set and frequencies.

        Raises:
            IndexError: ``t`` is not in ``[0, n_segments)``.
        """
        self._check_index(t)
        t = int(t)
        if t not in self._segments:
            self._segments[t] = _make_segment(self, t)
        return self._segments[t]

    def entity_counts(self, t: int) -> tuple[int, int]:
        """Users and items of segment ``t``'s training graph, without building the segment."""
        if t in self._segments:
            return self._segments[t].n_users, self._segments[t].n_items
        self._check_index(t)
        return _graph_extent(self, int(t), _split(self, int(t))[0])

    def _check_index(self, t: int) -> None:
        """Raise ``IndexError`` unless ``t`` is a segment index in ``[0, n_segments)``."""
        if isinstance(t, bool) or not isinstance(t, int | np.integer) or not 0 <= t < len(self):
            raise IndexError(f"segment index {t!r} is out of range [0, {self.n_segments})")

    def stats(self) -> dict[str, Any]:
        """Totals after filtering and one row of counts per segment (JSON-ready)."""
        rows = []
        for seg in self:
            rows.append(
                {
                    "segment": seg.index,
                    "n_interactions": int(self.bounds[seg.index + 1] - self.bounds[seg.index]),
                    "n_users": seg.n_users,
                    "n_items": seg.n_items,
                    "n_active_users": len(seg.active_users),
                    "n_active_items": len(seg.active_items),
                    "n_replay": seg.n_replay,
                    "n_train": seg.n_train,
                    "n_train_graph": int(seg.train_graph.nnz),
                    "n_test": seg.n_test,
                    "n_test_users": len(seg.test_users),
                    "n_candidate_items": len(seg.candidate_items),
                }
            )
        return {
            "dataset": self.name,
            "config": asdict(self.config),
            "n_users": self.n_users,
            "n_items": self.n_items,
            "n_interactions": self.n_interactions,
            "n_segments": self.n_segments,
            "segments": rows,
        }

    def save(self, path: str | os.PathLike) -> None:
        """Write the stream to ``path`` (``.npz``, written atomically, no pickles)."""
        lengths = np.array([len(r) for r in self.replay], dtype=np.int64)
        meta = {"name": self.name, "fingerprint": self.fingerprint, "config": asdict(self.config)}
        # A file handle, not a name: np.savez would append ".npz" to the temporary name.
        with atomic_path(path) as tmp, tmp.open("wb") as fh:
            np.savez(
                fh,
                meta=np.array(canonical_json(meta)),
                users=self.users,
                items=self.items,
                timestamps=self.timestamps,
                bounds=self.bounds,
                replay=np.concatenate(self.replay) if self.replay else np.zeros(0, np.int64),
                replay_lengths=lengths,
                user_labels=_labels_for_npz(self.user_labels),
                item_labels=_labels_for_npz(self.item_labels),
            )

    @classmethod
    def load(cls, path: str | os.PathLike) -> Stream:
        """Read a stream written by :meth:`save`.

        Raises:
            ValueError: The file is unreadable, truncated or inconsistent (the message names it).
        """
        try:
            with np.load(path, allow_pickle=False) as npz:
                meta = json.loads(str(npz["meta"]))
                arrays = {k: npz[k] for k in npz.files if k != "meta"}
            stream = cls(
                name=meta["name"],
                config=StreamConfig(**meta["config"]),
                fingerprint=meta["fingerprint"],
                users=arrays["users"],
                items=arrays["items"],
                timestamps=arrays["timestamps"],
                bounds=arrays["bounds"],
                replay=np.split(arrays["replay"], np.cumsum(arrays["replay_lengths"])[:-1]),
                user_labels=arrays["user_labels"],
                item_labels=arrays["item_labels"],
            )
        except (OSError, EOFError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as exc:
            raise ValueError(f"stream file {os.fspath(path)!r} is unreadable: {exc}") from exc
        _validate(stream, source=os.fspath(path))
        return stream


def _labels_for_npz(labels: np.ndarray) -> np.ndarray:
    return labels if labels.dtype.kind in "iu" else labels.astype(str)


def _validate(stream: Stream, source: str) -> None:
    n = stream.n_interactions
    ok = (
        len(stream.items) == n
        and len(stream.timestamps) == n
        and stream.bounds[0] == 0
        and stream.bounds[-1] == n
        and np.all(np.diff(stream.bounds) > 0)
        and len(stream.replay) == stream.n_segments
        and (
            n == 0 or (stream.users.max() < stream.n_users and stream.items.max() < stream.n_items)
        )
        and all(len(r) == 0 or r.max() < stream.bounds[t] for t, r in enumerate(stream.replay))
    )
    if not ok:
        raise ValueError(f"stream file {source!r} is inconsistent (truncated or corrupt)")


def k_core_filter(users: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the interactions that survive the iterated ``k``-core filter.

    Args:
        users: Dense user codes ``0..n_users-1`` per interaction.
        items: Dense item codes ``0..n_items-1`` per interaction.
        k: Minimum interactions per user and per item.
    """
    keep = np.ones(len(users), dtype=bool)
    n_users = int(users.max()) + 1 if len(users) else 0
    n_items = int(items.max()) + 1 if len(items) else 0
    while True:
        user_count = np.bincount(users[keep], minlength=n_users)
        item_count = np.bincount(items[keep], minlength=n_items)
        drop = keep & ((user_count[users] < k) | (item_count[items] < k))
        if not drop.any():
            return keep
        keep &= ~drop


def segment_bounds(
    users: np.ndarray, items: np.ndarray, timestamps: np.ndarray, config: StreamConfig
) -> np.ndarray:
    """Segment start offsets (plus the end) of a time-sorted, renumbered stream.

    Raises:
        ValueError: The data cannot give the requested segments.
    """
    n = len(users)
    if config.segmentation == "count":
        if config.n_segments > n:
            raise ValueError(
                f"n_segments={config.n_segments} is larger than the {n} interactions allow"
            )
        return (np.arange(config.n_segments + 1, dtype=np.int64) * n) // config.n_segments
    if config.segmentation == "new_entities":
        # Renumbered ids grow by one at each first appearance, so a running max counts arrivals.
        new_count = np.maximum.accumulate(users) + np.maximum.accumulate(items) + 2
        starts = [0]
        while True:
            limit = new_count[starts[-1] - 1] if starts[-1] > 0 else 0
            nxt = int(np.searchsorted(new_count, limit + config.new_entity_threshold, side="right"))
            # One interaction can bring a new user and a new item: with a threshold below 2 the
            # segment's own first interaction may exceed it, and a segment holds at least that.
            nxt = max(nxt, starts[-1] + 1)
            if nxt >= n:
                break
            starts.append(nxt)
        return np.array([*starts, n], dtype=np.int64)
    window = np.floor((timestamps - timestamps[0]) / config.time_window).astype(np.int64)
    starts = np.flatnonzero(np.r_[True, window[1:] != window[:-1]])
    return np.r_[starts, n].astype(np.int64)


def _replay_samples(
    users: np.ndarray, bounds: np.ndarray, config: StreamConfig
) -> list[np.ndarray]:
    seeds = np.random.SeedSequence(config.seed).spawn(len(bounds) - 1)
    replay = [np.zeros(0, dtype=np.int64)]
    for t in range(1, len(bounds) - 1):
        start, end = bounds[t], bounds[t + 1]
        size = int(config.replay_ratio * (end - start))
        active = np.zeros(int(users.max()) + 1, dtype=bool)
        active[users[start:end]] = True
        pool = np.flatnonzero(active[users[:start]])
        take = min(size, len(pool))
        picked = np.random.default_rng(seeds[t]).choice(len(pool), size=take, replace=False)
        replay.append(np.sort(pool[picked]).astype(np.int64))
    return replay


def build_stream(interactions: Interactions, config: StreamConfig | None = None) -> Stream:
    """Filter, sort, renumber, segment and sample replay from raw interactions.

    Args:
        interactions: Output of :func:`scall_env.data.load_interactions`.
        config: Stream settings (defaults: the paper's MovieLens-1M protocol).

    Raises:
        ValueError: Empty input, nothing left after the k-core filter, or more segments than the
            data allows (each segment needs training interactions and test interactions).
    """
    config = config or StreamConfig()
    frame = interactions.frame
    if len(frame) == 0:
        raise ValueError(f"dataset {interactions.name!r} has no interactions")
    user_codes, user_labels = pd.factorize(frame["user"], sort=False)
    item_codes, item_labels = pd.factorize(frame["item"], sort=False)
    keep = k_core_filter(user_codes, item_codes, config.k_core)
    if not keep.any():
        raise ValueError(
            f"no interaction of {interactions.name!r} survives the {config.k_core}-core filter; "
            "lower k_core"
        )
    timestamps = frame["timestamp"].to_numpy(dtype=np.int64)[keep]
    order = np.argsort(timestamps, kind="stable")
    timestamps = timestamps[order]
    users, user_first = pd.factorize(user_codes[keep][order], sort=False)
    items, item_first = pd.factorize(item_codes[keep][order], sort=False)
    users = users.astype(np.int32)
    items = items.astype(np.int32)
    bounds = segment_bounds(users, items, timestamps, config)
    _check_segment_sizes(bounds, config)
    stream = Stream(
        name=interactions.name,
        config=config,
        fingerprint=interactions.fingerprint,
        users=users,
        items=items,
        timestamps=timestamps,
        bounds=bounds,
        replay=_replay_samples(users, bounds, config),
        user_labels=np.asarray(user_labels)[user_first],
        item_labels=np.asarray(item_labels)[item_first],
    )
    _check_segments_usable(stream)
    return stream


def _split(stream: Stream, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the training and test parts of ``[replay; D_t]``."""
    own = np.arange(stream.bounds[t], stream.bounds[t + 1], dtype=np.int64)
    sequence = np.concatenate([stream.replay[t], own])
    cut = int(stream.config.train_fraction * len(sequence))
    return sequence[:cut], sequence[cut:]


def _graph_extent(stream: Stream, t: int, train: np.ndarray) -> tuple[int, int]:
    """Users and items of segment ``t``'s training graph (id prefixes, by first appearance)."""
    start = int(stream.bounds[t])
    n_users = max(stream.users[:start].max(initial=-1), stream.users[train].max(initial=-1)) + 1
    n_items = max(stream.items[:start].max(initial=-1), stream.items[train].max(initial=-1)) + 1
    return int(n_users), int(n_items)


def _too_few(t: int, n_segments: int, size: int) -> ValueError:
    return ValueError(
        f"segment {t} of {n_segments} has {size} interactions: too few for both a training "
        "part and a test part on training entities; use fewer segments (n_segments) or a "
        "larger new_entity_threshold / time_window"
    )


def _check_segment_sizes(bounds: np.ndarray, config: StreamConfig) -> None:
    """Refuse, before any replay is drawn, segments too small for a training and a test part.

    Even the largest possible replay sample (none for ``t = 0``) cannot make them usable; this
    keeps a tiny threshold or window from costing one pass over the stream per segment.
    """
    sizes = np.diff(bounds)
    longest = sizes + (config.replay_ratio * sizes).astype(np.int64) * (np.arange(len(sizes)) > 0)
    cut = (config.train_fraction * longest).astype(np.int64)
    hopeless = np.flatnonzero((cut < 1) | (longest - cut < 1))
    if len(hopeless):
        t = int(hopeless[0])
        raise _too_few(t, len(sizes), int(sizes[t]))


def _check_segments_usable(stream: Stream) -> None:
    for t in range(stream.n_segments):
        train, test = _split(stream, t)
        n_users, n_items = _graph_extent(stream, t, train)
        has_test = np.any((stream.users[test] < n_users) & (stream.items[test] < n_items))
        if len(train) == 0 or not has_test:
            raise _too_few(t, stream.n_segments, int(stream.bounds[t + 1] - stream.bounds[t]))


def _binary_csr(users: np.ndarray, items: np.ndarray, shape: tuple[int, int]) -> sp.csr_matrix:
    matrix = sp.csr_matrix(
        (np.ones(len(users), dtype=np.float32), (users, items)), shape=shape, dtype=np.float32
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def _make_segment(stream: Stream, t: int) -> Segment:
    users, items = stream.users, stream.items
    start = int(stream.bounds[t])
    train, test = _split(stream, t)
    graph = np.union1d(np.arange(start, dtype=np.int64), train)
    n_users, n_items = _graph_extent(stream, t, train)
    shape = (n_users, n_items)
    test_users, test_items = users[test], items[test]
    # The authors' evaluation set: every test user seen in training counts (scoring 0 when none
    # of their test items is a candidate), and every test item seen in training is a candidate,
    # also when its test user is new.
    known_user, known_item = test_users < n_users, test_items < n_items
    known = known_user & known_item
    test_matrix = _binary_csr(test_users[known], test_items[known], shape)
    return Segment(
        index=t,
        n_users=n_users,
        n_items=n_items,
        train_graph=_binary_csr(users[graph], items[graph], shape),
        current=_binary_csr(users[train], items[train], shape),
        test=test_matrix,
        test_users=np.unique(test_users[known_user]).astype(np.int64),
        candidate_items=np.unique(test_items[known_item]).astype(np.int64),
        active_users=np.unique(users[train]).astype(np.int64),
        active_items=np.unique(items[train]).astype(np.int64),
        user_freq=np.bincount(users[train], minlength=n_users).astype(np.int64),
        item_freq=np.bincount(items[train], minlength=n_items).astype(np.int64),
        n_train=len(train),
        n_replay=len(stream.replay[t]),
    )


def load_stream(
    dataset: str = "ml-1m",
    config: StreamConfig | None = None,
    data_dir: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    use_cache: bool = True,
    **dataset_options: Any,
) -> Stream:
    """Load a dataset and build its stream, through the on-disk cache.

    Args:
        dataset: A name from :data:`scall_env.data.DATASETS`.
        config: Stream settings (default :class:`StreamConfig()`).
        data_dir: Where the dataset files are (see :func:`scall_env.data.load_interactions`).
        cache_dir: Where processed streams are kept (default: :func:`default_cache_dir`).
        use_cache: Read and write the cache; ``False`` always rebuilds and writes nothing.
        **dataset_options: Passed to :func:`scall_env.data.load_interactions`.
    """
    config = config or StreamConfig()
    interactions = load_interactions(dataset, data_dir=data_dir, **dataset_options)
    if not use_cache:
        return build_stream(interactions, config)
    cache_path = (
        Path(cache_dir or default_cache_dir())
        / "streams"
        / f"{interactions.name}-{config.cache_key(interactions.fingerprint)[:20]}.npz"
    )
    cached = _read_cache(cache_path, interactions, config)
    if cached is not None:
        return cached
    stream = build_stream(interactions, config)
    try:
        stream.save(cache_path)
    except OSError as exc:
        warnings.warn(
            f"cannot write the stream cache {os.fspath(cache_path)!r} ({exc}); "
            "continuing without it",
            RuntimeWarning,
            stacklevel=2,
        )
    return stream


def _read_cache(path: Path, interactions: Interactions, config: StreamConfig) -> Stream | None:
    """The cached stream at ``path``, or ``None`` when it must be built.

    A file that is unreadable or was built from another source or with other settings is
    reported with a warning naming it, and ``None`` is returned; an absent file is not reported.
    """
    if not path.exists():
        return None
    try:
        cached = Stream.load(path)
    except ValueError as exc:
        problem = str(exc)
    else:
        # The file name holds only a prefix of the key, and any valid .npz may have been put in
        # its place: serve it only when its own record matches what was asked for.
        differs = [
            what
            for what, stored, requested in (
                ("dataset", cached.name, interactions.name),
                ("source fingerprint", cached.fingerprint, interactions.fingerprint),
                ("configuration", cached.config, config),
            )
            if stored != requested
        ]
        if not differs:
            return cached
        problem = (
            f"stream file {os.fspath(path)!r} holds a stream of another {' and '.join(differs)} "
            "than the one requested"
        )
    warnings.warn(f"rebuilding the stream: {problem}", RuntimeWarning, stacklevel=3)
    return None
