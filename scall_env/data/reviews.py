"""Review datasets stored as JSON lines: Yelp and Amazon Books (``.gz`` allowed).

Files of several GB are parsed in blocks of whole lines (about 64 MiB), so every field of only
one block is held at a time and only the wanted fields are kept; the md5 of the (decompressed)
bytes is computed on the way and becomes the fingerprint.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd

from scall_env.cache import digest
from scall_env.data.columns import Interactions, _datetime_seconds, _finish, _numeric_seconds
from scall_env.data.folders import DATA_DIR_ENV, DatasetNotFoundError, _search_folders

_JSON_BLOCK_BYTES = 64 * 2**20

_YELP_FIELDS = {"user_id": "user", "business_id": "item", "stars": "rating", "date": "timestamp"}
_AMAZON_FIELDS = {
    "reviewerID": "user",
    "asin": "item",
    "overall": "rating",
    "unixReviewTime": "timestamp",
}


def load_yelp(data_dir: Path | None, path: str | os.PathLike[str] | None = None) -> Interactions:
    """Load Yelp reviews; see :func:`scall_env.data.load_interactions`."""
    found = _find_file(
        "yelp", data_dir, path, ("yelp_academic_dataset_review.json",), ("yelp", "yelp_dataset")
    )
    frame, md5 = _read_json_lines(found, _YELP_FIELDS)
    frame["timestamp"] = _datetime_seconds(frame["timestamp"], f"{found}: field 'date'")
    return _finish(frame, "yelp", digest("yelp", md5), str(found), _field_names(_YELP_FIELDS))


def load_amazon_book(
    data_dir: Path | None, path: str | os.PathLike[str] | None = None
) -> Interactions:
    """Load Amazon Books reviews; see :func:`scall_env.data.load_interactions`."""
    names = ("Books_5.json", "reviews_Books_5.json")
    found = _find_file(
        "amazon-book",
        data_dir,
        path,
        names + tuple(f"{name}.gz" for name in names),
        ("amazon-book", "amazon"),
    )
    frame, md5 = _read_json_lines(found, _AMAZON_FIELDS)
    frame["timestamp"] = _numeric_seconds(frame["timestamp"], f"{found}: field 'unixReviewTime'")
    names = _field_names(_AMAZON_FIELDS)
    return _finish(frame, "amazon-book", digest("amazon-book", md5), str(found), names)


def _field_names(fields: dict[str, str]) -> dict[str, str]:
    """Output column -> ``"field '<source field>'"``, how messages name a column."""
    return {column: f"field {field!r}" for field, column in fields.items()}


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
        data_dir: Folder to search first (``None``: :func:`scall_env.data.default_data_dir`).
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
