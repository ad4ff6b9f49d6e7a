"""MovieLens releases: find the ratings file (plain or inside the official zip), or download it.

Every file is checked against the official md5 before parsing, so a corrupt, truncated or
different release fails with a message naming the file instead of half-loading. Zips are read
in memory, never extracted. Downloads go to the cache folder through
:func:`scall_env.cache.atomic_path`, so an interrupted or rejected download leaves nothing.
"""

from __future__ import annotations

import hashlib
import io
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd

from scall_env.cache import atomic_path, default_cache_dir, digest
from scall_env.data.columns import COLUMNS, Interactions, _finish
from scall_env.data.folders import DATA_DIR_ENV, DatasetNotFoundError, _search_folders

_DOWNLOAD_TIMEOUT_S = 60.0


class ChecksumError(ValueError):
    """A file's md5 differs from the official one (corrupt, truncated or a different release)."""


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


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
MOVIELENS: dict[str, MovieLensSource] = {
    source.name: source
    for source in (
        # name, ratings file, separator, (user, item, rating, time) fields, url, zip / file md5
        MovieLensSource("ml-1m", "ratings.dat", ":", (0, 2, 4, 6), f"{_GROUPLENS}/ml-1m.zip",
                        "c4d9eecfca2ab87c1945afe126590906", "a89aa3591bc97d6d4e0c89459ff39362"),
        MovieLensSource("ml-100k", "u.data", "\t", (0, 1, 2, 3), f"{_GROUPLENS}/ml-100k.zip",
                        "0e33842e24a9c977be4e0107933c0723", "6e47046882bad158b0efbb84cd5cb987"),
    )
}  # fmt: skip
"""Official MovieLens sources, keyed by dataset name."""


def load_ml_1m(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None, download: bool = True
) -> Interactions:
    """Load MovieLens-1M; see :func:`scall_env.data.load_interactions`."""
    return _load_movielens(MOVIELENS["ml-1m"], data_dir, path, download)


def load_ml_100k(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None, download: bool = True
) -> Interactions:
    """Load MovieLens-100K; see :func:`scall_env.data.load_interactions`."""
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
        data_dir: Folder to search first (``None``: :func:`scall_env.data.default_data_dir`).
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
    md5 = _verify_md5(raw, source.file_md5, label)
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
    return _finish(frame, source.name, digest(source.name, md5), label)


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
            # Several matches only in repacked archives: take the least nested one.
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
    """Fetch a release's zip atomically: the md5 is checked before the file takes its name.

    Args:
        source: Which release.
        cache_dir: Destination folder, created when missing.

    Returns:
        Path of the zip in ``cache_dir``.

    Raises:
        ChecksumError: The downloaded zip has the wrong md5 (nothing is kept).
    """
    target = cache_dir / f"{source.name}.zip"
    with atomic_path(target) as partial:
        with partial.open("wb") as handle:
            _fetch(source.url, handle)
        _verify_md5(partial.read_bytes(), source.zip_md5, f"download of {source.url}")
    return target


def _fetch(url: str, out: BinaryIO) -> None:
    """Stream the body at ``url`` into ``out`` (the only network access of this package).

    Args:
        url: Address to fetch.
        out: Binary file to write to.
    """
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        while block := response.read(2**20):
            out.write(block)
