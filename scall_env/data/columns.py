"""The column contract of :class:`Interactions` and the helpers every loader shares to meet it.

Each loader gathers the four columns of :data:`COLUMNS` in whatever dtypes its source gives and
hands them to :func:`_finish`, which normalises the dtypes, rejects empty input and bad values
with a message naming the first offending row, and wraps the result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

COLUMNS: tuple[str, ...] = ("user", "item", "rating", "timestamp")
"""Columns of :attr:`Interactions.frame`, in order."""


@dataclass(frozen=True, eq=False)
class Interactions:
    """Raw interactions of one dataset.

    Attributes:
        frame: Columns ``user``, ``item`` (raw ids: ``int64`` or pandas strings), ``rating``
            (``float32``) and ``timestamp`` (``int64`` seconds), one row per interaction, in
            source order, with a ``RangeIndex``. Never empty.
        name: The dataset name (one of :data:`scall_env.data.DATASETS`).
        fingerprint: Hex digest of the source content and of the options that change it, usable
            as a cache key. For files it is derived from the md5 of the bytes read.
    """

    frame: pd.DataFrame
    name: str
    fingerprint: str


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
