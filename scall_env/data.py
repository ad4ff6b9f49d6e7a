"""Interaction sources: one interface that returns raw interactions for every supported dataset.

:func:`load_interactions` returns an :class:`Interactions` whose ``frame`` has the columns
``user``, ``item`` (raw ids as in the source: ``int64``, or pandas strings for text ids),
``rating`` (``float32``) and ``timestamp`` (``int64`` seconds), in source order with a fresh
``RangeIndex``. Nothing is filtered, sorted or renumbered here: that is the stream's job.

Sources:

* ``ml-1m`` and ``ml-100k``: MovieLens files found under a data folder (plain or inside the
  official zip, read without extracting), downloaded into the cache folder when absent, and
  always checked against the official md5 so that corrupt or truncated files never half-load.
* ``yelp`` and ``amazon-book``: JSON-lines review files (optionally gzip-compressed).
* ``delimited``: any delimited text file with named (or positional) columns.
* ``synthetic``: a seeded, vectorised generator with power-law popularity, users and items
  arriving through the stream, user activity fading after arrival and optional
  item-popularity drift.

Data folders: ``$SCALL_DATA_DIR`` (else the cache folder) is searched, then the cache folder
``$SCALL_CACHE_DIR`` (else ``~/.cache/scall``), where downloads land.
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import io
import json
import os
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "DATASETS",
    "MOVIELENS",
    "ChecksumError",
    "DatasetNotFoundError",
    "Interactions",
    "MovieLensSource",
    "default_cache_dir",
    "default_data_dir",
    "load_interactions",
    "synthetic_interactions",
]

DATASETS: tuple[str, ...] = ("ml-1m", "ml-100k", "yelp", "amazon-book", "delimited", "synthetic")
"""Names accepted by :func:`load_interactions`."""

COLUMNS: tuple[str, ...] = ("user", "item", "rating", "timestamp")
"""Columns of :attr:`Interactions.frame`, in order."""

DATA_DIR_ENV = "SCALL_DATA_DIR"
CACHE_DIR_ENV = "SCALL_CACHE_DIR"

_JSON_BLOCK_BYTES = 64 * 2**20
_DOWNLOAD_TIMEOUT_S = 60.0
_SYNTHETIC_START = 1_000_000_000
_SYNTHETIC_MAX_GAP = 60
_SYNTHETIC_MAX_DRAWS = 8


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they were looked for and could not be downloaded."""


class ChecksumError(ValueError):
    """A file's md5 differs from the official one (corrupt, truncated or a different release)."""


@dataclass(frozen=True, eq=False)
class Interactions:
    """Raw interactions of one dataset.

    Attributes:
        frame: Columns ``user``, ``item`` (raw ids: ``int64`` or pandas strings), ``rating``
            (``float32``) and ``timestamp`` (``int64`` seconds), one row per interaction, in
            source order, with a ``RangeIndex``. Never empty.
        name: The dataset name (one of :data:`DATASETS`).
        fingerprint: Hex digest of the source content and of the options that change it, usable
            as a cache key. For files it is derived from the md5 of the bytes read.
    """

    frame: pd.DataFrame
    name: str
    fingerprint: str


@dataclass(frozen=True)
class MovieLensSource:
    """Where a MovieLens release lives and what its files must hash to.

    Attributes:
        name: Dataset name, also the folder and zip stem (``ml-1m``).
        filename: The ratings file (``ratings.dat``).
        sep: One-character field separator (ml-1m's ``::`` is read as ``:``, its empty fields
            skipped through ``fields``).
        fields: Positions of user, item, rating and timestamp among the separated fields.
        url: Official zip download address.
        zip_md5: md5 of the official zip.
        file_md5: md5 of the official ratings file.
    """

    name: str
    filename: str
    sep: str
    fields: tuple[int, int, int, int]
    url: str
    zip_md5: str
    file_md5: str


MOVIELENS: dict[str, MovieLensSource] = {
    "ml-1m": MovieLensSource(
        name="ml-1m",
        filename="ratings.dat",
        sep=":",
        fields=(0, 2, 4, 6),
        url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        zip_md5="c4d9eecfca2ab87c1945afe126590906",
        file_md5="a89aa3591bc97d6d4e0c89459ff39362",
    ),
    "ml-100k": MovieLensSource(
        name="ml-100k",
        filename="u.data",
        sep="\t",
        fields=(0, 1, 2, 3),
        url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        zip_md5="0e33842e24a9c977be4e0107933c0723",
        file_md5="6e47046882bad158b0efbb84cd5cb987",
    ),
}
"""Official MovieLens sources, keyed by dataset name."""


def default_cache_dir() -> Path:
    """Folder for downloads and caches.

    Returns:
        ``$SCALL_CACHE_DIR`` when set, else ``~/.cache/scall``.
    """
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scall"


def default_data_dir() -> Path:
    """Folder searched for dataset files when no ``data_dir`` is given.

    Returns:
        ``$SCALL_DATA_DIR`` when set, else :func:`default_cache_dir`.
    """
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else default_cache_dir()


def load_interactions(
    dataset: str, data_dir: str | os.PathLike[str] | None = None, **options: Any
) -> Interactions:
    """Load the raw interactions of a dataset.

    Options per dataset:

    * ``ml-1m``, ``ml-100k``: ``path`` (a ratings file or official zip, instead of searching),
      ``download`` (default ``True``: fetch the official zip into the cache folder when nothing
      is found).
    * ``yelp``, ``amazon-book``: ``path`` (the JSON-lines review file, ``.gz`` allowed, instead
      of searching).
    * ``delimited``: ``path`` (required), ``sep``, ``user_col``, ``item_col``, ``time_col``,
      ``rating_col``, ``header``; see the loader's docstring for defaults.
    * ``synthetic``: the parameters of :func:`synthetic_interactions`.

    Args:
        dataset: One of :data:`DATASETS`.
        data_dir: Folder to search for the dataset's files (``None``: :func:`default_data_dir`).
            The cache folder, where downloads land, is searched after it. Ignored by
            ``delimited`` and ``synthetic``.
        **options: Dataset-specific options listed above.

    Returns:
        The interactions, in source order.

    Raises:
        ValueError: Unknown dataset, empty or malformed input, or (:class:`ChecksumError`) a
            MovieLens file or download whose md5 is not the official one.
        TypeError: An option the dataset does not take (the message lists those it takes).
        DatasetNotFoundError: The files are absent and could not be downloaded; the message
            says where to put them.
    """
    loader = _LOADERS.get(dataset)
    if loader is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    signature = inspect.signature(synthetic_interactions if dataset == "synthetic" else loader)
    allowed = [name for name in signature.parameters if name != "data_dir"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)} for dataset {dataset!r}; "
            f"allowed: {', '.join(allowed) or 'none'}"
        )
    return loader(None if data_dir is None else Path(data_dir), **options)


# --------------------------------------------------------------------------------------------
# MovieLens


def _load_ml_1m(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None, download: bool = True
) -> Interactions:
    """Load MovieLens-1M; see :func:`load_interactions`."""
    return _load_movielens(MOVIELENS["ml-1m"], data_dir, path, download)


def _load_ml_100k(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None, download: bool = True
) -> Interactions:
    """Load MovieLens-100K; see :func:`load_interactions`."""
    return _load_movielens(MOVIELENS["ml-100k"], data_dir, path, download)


def _load_movielens(
    source: MovieLensSource,
    data_dir: Path | None,
    path: str | os.PathLike[str] | None,
    download: bool,
) -> Interactions:
    """Find (or download), verify and parse a MovieLens ratings file.

    Args:
        source: Which release.
        data_dir: Folder to search first (``None``: :func:`default_data_dir`).
        path: Explicit ratings file or zip; disables searching and downloading.
        download: Whether to fetch the official zip when nothing is found.

    Returns:
        The interactions.
    """
    if path is not None:
        found = Path(path)
        if not found.is_file():
            raise DatasetNotFoundError(f"{source.name}: no file at path={str(found)!r}")
    else:
        folders = _search_folders(data_dir)
        candidates = _movielens_candidates(source, folders)
        found = next((candidate for candidate in candidates if candidate.is_file()), None)
        if found is None:
            found = _download_or_explain(source, folders, candidates, download)
    raw, label = _read_movielens_bytes(source, found)
    digest = _verify_md5(raw, source.file_md5, label)
    try:
        frame = pd.read_csv(
            io.BytesIO(raw),
            sep=source.sep,
            header=None,
            usecols=list(source.fields),
            dtype=dict(zip(source.fields, (np.int64, np.int64, np.float32, np.int64), strict=True)),
            engine="c",
        )
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{label}: no interactions (empty input)") from err
    frame.columns = list(COLUMNS)
    return _finish(frame, source.name, _digest(source.name, digest), label)


def _search_folders(data_dir: Path | None) -> list[Path]:
    """The data folder (given or default) followed by the cache folder, without repeats."""
    folders = [data_dir if data_dir is not None else default_data_dir(), default_cache_dir()]
    return list(dict.fromkeys(folder.expanduser() for folder in folders))


def _movielens_candidates(source: MovieLensSource, folders: list[Path]) -> list[Path]:
    """Every place a release's ratings file or zip may be, in search order."""
    zip_name = f"{source.name}.zip"
    return [
        candidate
        for folder in folders
        for candidate in (
            folder / source.filename,
            folder / source.name / source.filename,
            folder / zip_name,
            folder / source.name / zip_name,
        )
    ]


def _read_movielens_bytes(source: MovieLensSource, path: Path) -> tuple[bytes, str]:
    """Read the ratings bytes from a plain file or from inside a zip.

    Args:
        source: Which release.
        path: A ratings file or a zip holding one.

    Returns:
        The bytes and a label naming where they came from (for error messages).
    """
    if not zipfile.is_zipfile(path):
        if path.suffix == ".zip":
            raise ValueError(f"{path} is not a valid zip archive (truncated download?)")
        return path.read_bytes(), str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [
                name for name in archive.namelist() if name.rsplit("/", 1)[-1] == source.filename
            ]
            if not members:
                raise ValueError(f"{path} holds no {source.filename}")
            member = min(members, key=len)
            return archive.read(member), f"{member} inside {path}"
    except (zipfile.BadZipFile, EOFError) as err:
        raise ValueError(f"{path} is not a valid zip archive ({err})") from err


def _verify_md5(raw: bytes, expected: str, label: str) -> str:
    """Check bytes against an md5 and return the digest.

    Args:
        raw: The bytes read.
        expected: The official md5.
        label: Where the bytes came from.

    Returns:
        The md5 hex digest of ``raw``.

    Raises:
        ChecksumError: The digests differ.
    """
    found = hashlib.md5(raw).hexdigest()
    if found != expected:
        raise ChecksumError(
            f"{label}: md5 {found} differs from the official {expected} "
            f"(corrupt, truncated or a different release; replace the file)"
        )
    return found


def _download_or_explain(
    source: MovieLensSource, folders: list[Path], candidates: list[Path], download: bool
) -> Path:
    """Download the official zip into the cache folder, or explain where the files belong.

    Args:
        source: Which release.
        folders: The folders that were searched.
        candidates: The paths that were tried.
        download: Whether downloading is allowed.

    Returns:
        Path of the downloaded zip.

    Raises:
        DatasetNotFoundError: Downloading is disabled or failed.
    """
    if download:
        try:
            return _download(source, default_cache_dir())
        except OSError as err:  # urllib.error.URLError included
            reason = f"downloading {source.url} failed: {err}"
    else:
        reason = "downloading is disabled (download=False)"
    tried = "\n".join(f"  {candidate}" for candidate in candidates)
    raise DatasetNotFoundError(
        f"{source.name}: {source.filename} not found. Looked for:\n{tried}\n"
        f"Put {source.filename} (or the official {source.name}.zip from {source.url}) in "
        f"{folders[0]} or {folders[0] / source.name}, or set {DATA_DIR_ENV} to a folder "
        f"holding it, or pass data_dir=... or path=...; {reason}."
    )


def _download(source: MovieLensSource, cache_dir: Path) -> Path:
    """Fetch a release's zip atomically (temporary file, md5 check, rename).

    Args:
        source: Which release.
        cache_dir: Destination folder, created when missing.

    Returns:
        Path of the zip in ``cache_dir``.

    Raises:
        ChecksumError: The downloaded zip has the wrong md5 (nothing is kept).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / f"{source.name}.zip"
    descriptor, name = tempfile.mkstemp(dir=cache_dir, prefix=f".{source.name}-", suffix=".part")
    partial = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            _fetch(source.url, handle)
        _verify_md5(partial.read_bytes(), source.zip_md5, f"download of {source.url}")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _fetch(url: str, out: BinaryIO) -> None:
    """Stream the body at ``url`` into ``out`` (the only network access of this module).

    Args:
        url: Address to fetch.
        out: Binary file to write to.
    """
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        while block := response.read(2**20):
            out.write(block)


# --------------------------------------------------------------------------------------------
# JSON-lines reviews


_YELP_FIELDS = {"user_id": "user", "business_id": "item", "stars": "rating", "date": "timestamp"}
_AMAZON_FIELDS = {
    "reviewerID": "user",
    "asin": "item",
    "overall": "rating",
    "unixReviewTime": "timestamp",
}


def _load_yelp(data_dir: Path | None, path: str | os.PathLike[str] | None = None) -> Interactions:
    """Load Yelp reviews; see :func:`load_interactions`."""
    found = _find_file(
        "yelp", data_dir, path, ("yelp_academic_dataset_review.json",), ("yelp", "yelp_dataset")
    )
    frame, digest = _read_json_lines(found, _YELP_FIELDS)
    frame["timestamp"] = _datetime_seconds(frame["timestamp"], f"{found}: field 'date'")
    return _finish(frame, "yelp", _digest("yelp", digest), str(found))


def _load_amazon_book(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None
) -> Interactions:
    """Load Amazon Books reviews; see :func:`load_interactions`."""
    names = ("Books_5.json", "reviews_Books_5.json")
    found = _find_file(
        "amazon-book",
        data_dir,
        path,
        names + tuple(f"{name}.gz" for name in names),
        ("amazon-book", "amazon"),
    )
    frame, digest = _read_json_lines(found, _AMAZON_FIELDS)
    frame["timestamp"] = _numeric_seconds(frame["timestamp"], f"{found}: field 'unixReviewTime'")
    return _finish(frame, "amazon-book", _digest("amazon-book", digest), str(found))


def _find_file(
    dataset: str,
    data_dir: Path | None,
    path: str | os.PathLike[str] | None,
    names: tuple[str, ...],
    subfolders: tuple[str, ...],
) -> Path:
    """Resolve an explicit path, or search the data folders for a dataset file.

    Args:
        dataset: Dataset name, for messages.
        data_dir: Folder to search first (``None``: :func:`default_data_dir`).
        path: Explicit file; when given, nothing is searched.
        names: File names to look for.
        subfolders: Subfolders of each searched folder to look in as well.

    Returns:
        The file.

    Raises:
        DatasetNotFoundError: Nothing found; the message lists what was tried.
    """
    if path is not None:
        candidates = [Path(path)]
    else:
        candidates = [
            directory / name
            for folder in _search_folders(data_dir)
            for directory in (folder, *(folder / sub for sub in subfolders))
            for name in names
        ]
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    if found is None:
        tried = "\n".join(f"  {candidate}" for candidate in candidates)
        raise DatasetNotFoundError(
            f"{dataset}: no review file found. Looked for:\n{tried}\n"
            f"Download it from the dataset's site and pass path=..., or put it in one of "
            f"these folders (or a folder named by {DATA_DIR_ENV})."
        )
    return found


def _read_json_lines(path: Path, fields: dict[str, str]) -> tuple[pd.DataFrame, str]:
    """Read selected fields of a JSON-lines file in blocks, hashing the bytes as they stream.

    Args:
        path: The file (gzip-compressed when its name ends in ``.gz``).
        fields: Source field name -> output column name.

    Returns:
        The selected fields (renamed, source order) and the md5 of the (decompressed) bytes.
    """
    hasher = hashlib.md5()
    with gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb") as handle:
        parts = [_parse_json_block(block, path, fields) for block in _line_blocks(handle, hasher)]
    if not parts:
        raise ValueError(f"{path}: no interactions (empty input)")
    return pd.concat(parts, ignore_index=True), hasher.hexdigest()


def _line_blocks(handle: BinaryIO, hasher: Any) -> Iterator[bytes]:
    """Yield non-blank blocks of whole lines from a binary file, feeding every byte to ``hasher``.

    Args:
        handle: Open binary file.
        hasher: A ``hashlib`` object updated with the bytes read.

    Yields:
        Blocks of about ``_JSON_BLOCK_BYTES`` that end at a line boundary (the last may not).
    """
    rest = b""
    while chunk := handle.read(_JSON_BLOCK_BYTES):
        hasher.update(chunk)
        data = rest + chunk
        cut = data.rfind(b"\n") + 1
        data, rest = data[:cut], data[cut:]
        if data.strip():
            yield data
    if rest.strip():
        yield rest


def _parse_json_block(block: bytes, path: Path, fields: dict[str, str]) -> pd.DataFrame:
    """Parse one block of JSON lines and keep the wanted fields.

    Args:
        block: Whole JSON lines.
        path: Source file, for messages.
        fields: Source field name -> output column name.

    Returns:
        The wanted fields, renamed.

    Raises:
        ValueError: Invalid JSON, or records without a wanted field.
    """
    try:
        records = pd.read_json(io.BytesIO(block), lines=True, dtype=False)
    except ValueError as err:
        raise ValueError(f"{path}: not valid JSON lines ({err})") from err
    missing = [field for field in fields if field not in records.columns]
    if missing:
        raise ValueError(
            f"{path}: records lack field(s) {', '.join(missing)}; "
            f"fields present: {', '.join(map(str, records.columns))}"
        )
    return records[list(fields)].rename(columns=fields)


# --------------------------------------------------------------------------------------------
# Delimited files


def _load_delimited(
    data_dir: Path | None,
    path: str | os.PathLike[str] | None = None,
    sep: str = ",",
    user_col: str | int | None = None,
    item_col: str | int | None = None,
    time_col: str | int | None = None,
    rating_col: str | int | None = None,
    header: bool = True,
) -> Interactions:
    """Load any delimited text file.

    Args:
        data_dir: Unused (the file is given by ``path``).
        path: The file (required).
        sep: Field separator (``"\\t"``, ``"::"``, ``r"\\s+"`` ... work too).
        user_col: User id column: a name with ``header``, a 0-based position without
            (default ``"user"`` / ``0``).
        item_col: Item id column (default ``"item"`` / ``1``).
        time_col: Timestamp column, numeric seconds (default ``"timestamp"`` / ``2``).
        rating_col: Rating column; ``None`` gives every interaction rating 1.0.
        header: Whether the first line names the columns.

    Returns:
        The interactions.
    """
    if path is None:
        raise ValueError("dataset 'delimited' needs path=... (the file to read)")
    file = Path(path)
    if not file.is_file():
        raise DatasetNotFoundError(f"delimited: no file at path={str(file)!r}")
    defaults: tuple[str | int, ...] = ("user", "item", "timestamp") if header else (0, 1, 2)
    columns = {
        "user_col": defaults[0] if user_col is None else user_col,
        "item_col": defaults[1] if item_col is None else item_col,
        "time_col": defaults[2] if time_col is None else time_col,
    }
    if rating_col is not None:
        columns["rating_col"] = rating_col
    raw = file.read_bytes()
    try:
        table = pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            header=0 if header else None,
            engine="c" if len(sep) == 1 or sep == r"\s+" else "python",
        )
    except pd.errors.EmptyDataError as err:
        raise ValueError(f"{file}: no interactions (empty input)") from err
    except pd.errors.ParserError as err:
        raise ValueError(f"{file}: cannot be parsed with sep={sep!r} ({err})") from err
    missing = [f"{option}={column!r}" for option, column in columns.items() if column not in table]
    if missing:
        raise ValueError(
            f"{file}: no column {', '.join(missing)}; the file has columns "
            f"{list(table.columns)} (sep={sep!r}, header={header})"
        )
    time = columns["time_col"]
    frame = pd.DataFrame(
        {
            "user": table[columns["user_col"]],
            "item": table[columns["item_col"]],
            "rating": 1.0 if rating_col is None else table[rating_col],
            "timestamp": _numeric_seconds(table[time], f"{file}: column {time!r}"),
        }
    )
    options = {**columns, "sep": sep, "header": header}
    fingerprint = _digest("delimited", hashlib.md5(raw).hexdigest(), options)
    return _finish(frame, "delimited", fingerprint, str(file))


# --------------------------------------------------------------------------------------------
# Synthetic streams


def synthetic_interactions(
    n_users: int = 2_000,
    n_items: int = 1_000,
    n_interactions: int = 60_000,
    user_exponent: float = 0.5,
    item_exponent: float = 0.8,
    drift: float = 1.0,
    user_drift: float = 3.0,
    initial_users: float = 0.1,
    initial_items: float = 0.5,
    seed: int = 0,
) -> Interactions:
    """Generate a seeded synthetic stream (fully vectorised).

    Users and items have power-law popularity: the entity of popularity rank ``r`` (1-based,
    ranks assigned at random) has weight ``r ** -exponent``. A share of the users and items exist
    from the start; the others arrive at uniform random times through the stream, so new ids keep
    appearing. Each interaction happens at a time ``t`` in [0, 1] of the stream and picks a user
    among those already arrived in proportion to ``weight * exp(-user_drift * age)`` and an item
    among those already arrived in proportion to ``weight * exp(-drift * age)``, where
    ``age = t - arrival``: users are most active soon after they join, and with ``drift > 0``
    item popularity fades with age and shifts toward newer items. (The age factor is the same
    for every entity up to ``exp(rate * arrival)``, so sampling stays a prefix-cumsum lookup.)

    Candidates are drawn until ``n_interactions`` distinct (user, item) pairs exist; the first
    occurrence of each pair is kept and a uniform subset of them is returned, so the stream has no
    duplicate pairs and still spans the whole time range.

    Raw ids are arrival ranks (``int64``, ``0`` arrived first), ratings are 1.0 and timestamps are
    strictly increasing integer seconds starting at 1e9 (gaps of 1 to 60 s).

    Args:
        n_users: Number of potential users (not all need to interact).
        n_items: Number of potential items.
        n_interactions: Number of interactions (rows) returned.
        user_exponent: Power-law exponent of user activity (0: uniform).
        item_exponent: Power-law exponent of item popularity (0: uniform).
        drift: Rate at which item popularity decays with age, per stream length (0: none).
        user_drift: Rate at which user activity decays with time since arrival (0: none).
        initial_users: Share of users present from the start, in (0, 1]; at least one is.
        initial_items: Share of items present from the start, in (0, 1]; at least one is.
        seed: Seed of the ``numpy`` random generator.

    Returns:
        The interactions, in time order.

    Raises:
        ValueError: Invalid parameters, or too many interactions for distinct pairs.
    """
    params = {
        "n_users": n_users,
        "n_items": n_items,
        "n_interactions": n_interactions,
        "user_exponent": user_exponent,
        "item_exponent": item_exponent,
        "drift": drift,
        "user_drift": user_drift,
        "initial_users": initial_users,
        "initial_items": initial_items,
        "seed": seed,
    }
    _check_synthetic(params)
    rng = np.random.default_rng(seed)
    user_arrival = _arrivals(rng, n_users, initial_users)
    item_arrival = _arrivals(rng, n_items, initial_items)
    user_cum = np.cumsum(_weights(rng, user_arrival, user_exponent, user_drift))
    item_cum = np.cumsum(_weights(rng, item_arrival, item_exponent, drift))
    draws = n_interactions + n_interactions // 10 + 1
    for _ in range(_SYNTHETIC_MAX_DRAWS):
        timestamps = _SYNTHETIC_START + np.cumsum(
            rng.integers(1, _SYNTHETIC_MAX_GAP + 1, size=draws)
        )
        position = (timestamps - timestamps[0]) / max(int(timestamps[-1] - timestamps[0]), 1)
        users = _pick(rng, position, user_arrival, user_cum)
        items = _pick(rng, position, item_arrival, item_cum)
        first = np.unique(users * n_items + items, return_index=True)[1]
        if first.size >= n_interactions:
            break
        draws = int(draws * 1.2 * n_interactions / first.size) + 1
    else:
        raise ValueError(
            f"could not draw {n_interactions} distinct (user, item) pairs from {n_users} users "
            f"and {n_items} items; lower n_interactions or the exponents"
        )
    keep = np.sort(first[rng.choice(first.size, size=n_interactions, replace=False)])
    frame = pd.DataFrame(
        {
            "user": users[keep],
            "item": items[keep],
            "rating": np.ones(n_interactions, dtype=np.float32),
            "timestamp": timestamps[keep],
        }
    )
    return _finish(frame, "synthetic", _digest("synthetic", params), "synthetic_interactions")


def _load_synthetic(data_dir: Path | None, **params: Any) -> Interactions:
    """Adapter of :func:`synthetic_interactions` for :func:`load_interactions`."""
    return synthetic_interactions(**params)


def _check_synthetic(params: dict[str, Any]) -> None:
    """Validate the parameters of :func:`synthetic_interactions`.

    Args:
        params: Parameter name -> value.

    Raises:
        ValueError: A parameter is out of range.
    """
    for name in ("n_users", "n_items", "n_interactions"):
        if not isinstance(params[name], int | np.integer) or params[name] < 1:
            raise ValueError(f"{name} must be a positive integer, got {params[name]!r}")
    if not isinstance(params["seed"], int | np.integer) or params["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer, got {params['seed']!r}")
    for name in ("user_exponent", "item_exponent", "drift", "user_drift"):
        if not np.isfinite(params[name]) or params[name] < 0:
            raise ValueError(f"{name} must be finite and >= 0, got {params[name]!r}")
    for name in ("initial_users", "initial_items"):
        if not 0 < params[name] <= 1:
            raise ValueError(f"{name} must be in (0, 1], got {params[name]!r}")
    if params["n_interactions"] > params["n_users"] * params["n_items"]:
        raise ValueError(
            f"n_interactions={params['n_interactions']} exceeds the "
            f"{params['n_users'] * params['n_items']} distinct (user, item) pairs"
        )


def _arrivals(rng: np.random.Generator, n: int, initial: float) -> np.ndarray:
    """Sorted arrival times in [0, 1): the first ``max(1, round(initial * n))`` arrive at 0."""
    n_initial = max(1, round(initial * n))
    return np.concatenate([np.zeros(n_initial), np.sort(rng.random(n - n_initial))])


def _weights(
    rng: np.random.Generator, arrival: np.ndarray, exponent: float, rate: float
) -> np.ndarray:
    """Sampling weights in arrival order: power law over random ranks times age decay.

    Args:
        rng: Random generator.
        arrival: Sorted arrival times in [0, 1).
        exponent: Power-law exponent: rank ``r`` (1-based, random) has weight ``r ** -exponent``.
        rate: Decay rate with age; ``exp(-rate * (t - arrival))`` is ``exp(rate * arrival)`` up
            to a factor shared by all entities at time ``t``, shifted here to stay <= 1.

    Returns:
        One weight per entity, ``float64``.
    """
    ranks = rng.permutation(arrival.size) + 1.0
    return ranks**-exponent * np.exp(rate * (arrival - 1.0))


def _pick(
    rng: np.random.Generator, position: np.ndarray, arrival: np.ndarray, cum_weight: np.ndarray
) -> np.ndarray:
    """Draw one arrived entity per stream position, with probability proportional to weight.

    Args:
        rng: Random generator.
        position: Stream positions in [0, 1].
        arrival: Sorted arrival times (the first is 0).
        cum_weight: Cumulative weights in arrival order.

    Returns:
        Entity indices (arrival ranks), ``int64``.
    """
    arrived = np.searchsorted(arrival, position, side="right")
    draw = rng.random(position.size) * cum_weight[arrived - 1]
    return np.minimum(np.searchsorted(cum_weight, draw, side="right"), arrived - 1).astype(np.int64)


# --------------------------------------------------------------------------------------------
# Shared helpers


def _ids(values: pd.Series, what: str) -> pd.Series:
    """Raw ids as ``int64`` when integral, else as strings.

    Args:
        values: The id column.
        what: Column description, for messages.

    Returns:
        The ids.

    Raises:
        ValueError: Missing ids.
    """
    _check_present(values, what)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.astype(np.int64)
    return values.astype(str)


def _numeric_seconds(values: pd.Series, what: str) -> np.ndarray:
    """Numeric timestamps as ``int64`` seconds (fractions are truncated toward minus infinity).

    Args:
        values: The timestamp column.
        what: Column description, for messages.

    Returns:
        Seconds, ``int64``.

    Raises:
        ValueError: Missing or non-numeric timestamps.
    """
    _check_present(values, what)
    if pd.api.types.is_integer_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    _raise_first_bad(~np.isfinite(numeric), values, what, "non-numeric timestamp")
    return np.floor(numeric).astype(np.int64)


def _datetime_seconds(values: pd.Series, what: str) -> np.ndarray:
    """ISO-8601 date-times (naive ones read as UTC) as ``int64`` seconds since the epoch.

    Args:
        values: The date column.
        what: Column description, for messages.

    Returns:
        Seconds, ``int64``.

    Raises:
        ValueError: Missing or unparsable dates.
    """
    _check_present(values, what)
    stamps = pd.to_datetime(values.astype(str), format="ISO8601", utc=True, errors="coerce")
    _raise_first_bad(stamps.isna().to_numpy(), values, what, "unparsable date")
    return ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(np.int64)


def _check_present(values: pd.Series, what: str) -> None:
    """Raise ``ValueError`` naming the first missing value of a column."""
    _raise_first_bad(values.isna().to_numpy(), values, what, "missing value")


def _raise_first_bad(bad: np.ndarray, values: pd.Series, what: str, problem: str) -> None:
    """Raise ``ValueError`` describing the first flagged row, if any.

    Args:
        bad: Boolean flag per row.
        values: The column, to quote the bad value.
        what: Column description.
        problem: What is wrong with flagged rows.
    """
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{what}: {problem} {values.iloc[row]!r} in data row {row} (0-based; "
            f"{int(bad.sum())} such row(s))"
        )


def _finish(frame: pd.DataFrame, name: str, fingerprint: str, source: str) -> Interactions:
    """Normalise column order and dtypes, reject empty input, wrap.

    Args:
        frame: Columns ``user``, ``item``, ``rating``, ``timestamp``.
        name: Dataset name.
        fingerprint: Cache key.
        source: What was read, for the empty-input message.

    Returns:
        The interactions.

    Raises:
        ValueError: No rows, or non-numeric ratings.
    """
    if frame.empty:
        raise ValueError(f"{source}: no interactions (empty input)")
    ratings = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float32)
    _raise_first_bad(np.isnan(ratings), frame["rating"], f"{source}: ratings", "non-numeric rating")
    frame = pd.DataFrame(
        {
            "user": _ids(frame["user"], f"{source}: user ids"),
            "item": _ids(frame["item"], f"{source}: item ids"),
            "rating": ratings,
            "timestamp": frame["timestamp"].to_numpy(dtype=np.int64),
        }
    )
    return Interactions(frame=frame, name=name, fingerprint=fingerprint)


def _digest(*parts: Any) -> str:
    """SHA-256 hex digest of a canonical JSON rendering of ``parts`` (numpy scalars as Python)."""
    text = json.dumps(parts, sort_keys=True, default=lambda value: value.item())
    return hashlib.sha256(text.encode()).hexdigest()


_LOADERS: dict[str, Callable[..., Interactions]] = {
    "ml-1m": _load_ml_1m,
    "ml-100k": _load_ml_100k,
    "yelp": _load_yelp,
    "amazon-book": _load_amazon_book,
    "delimited": _load_delimited,
    "synthetic": _load_synthetic,
}
