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


_INT64 = np.iinfo(np.int64)
_INTEGER_TEXT = r"\s*-?(?:0|[1-9][0-9]*)\s*"
"""An integer written plainly: no leading zeros, no ``+`` (surrounding blanks allowed)."""
_PROBE_ROWS = 1000


def _ids(values: pd.Series, what: str) -> pd.Series:
    """Raw ids as ``int64`` when the source stores integers, else as strings.

    Args:
        values: The id column.
        what: Column description, for messages.

    Returns:
        The ids.

    Raises:
        ValueError: Missing ids, or integer ids outside the ``int64`` range.
    """
    _check_present(values, what)
    if pd.api.types.is_integer_dtype(values.dtype):
        _check_int64(values.to_numpy(), values, what, "id")
        return values.astype(np.int64)
    return values.astype(str)


def _text_ids(values: pd.Series, what: str) -> pd.Series:
    """Ids read as text: ``int64`` when every one is a plain decimal integer, else the text.

    ``"007"`` and ``"7"`` are different ids, so a column with leading zeros (or any
    non-numeric id) stays text and nothing merges.

    Args:
        values: The id column as read from a text file (strings).
        what: Column description, for messages.

    Returns:
        The ids.

    Raises:
        ValueError: Missing ids, or plain integer ids outside the ``int64`` range.
    """
    _check_present(values, what)
    text = values.astype(str)
    head = text.iloc[:_PROBE_ROWS]  # most text columns give themselves away at once
    if not (head.str.fullmatch(_INTEGER_TEXT).all() and text.str.fullmatch(_INTEGER_TEXT).all()):
        return text
    digits = text.str.strip()
    long = digits.str.lstrip("-").str.len() >= len(str(_INT64.max))
    outside = np.zeros(len(digits), dtype=bool)
    outside[long.to_numpy()] = [
        not _INT64.min <= int(value) <= _INT64.max for value in digits[long]
    ]
    _raise_first_bad(outside, values, what, _outside_int64("id"))
    return digits.astype(np.int64)


def _outside_int64(kind: str) -> str:
    return f"{kind} outside the int64 range [{_INT64.min}, {_INT64.max}]:"


def _check_int64(numbers: np.ndarray, values: pd.Series, what: str, kind: str) -> None:
    """Raise ``ValueError`` naming the first integer (of any integer dtype) beyond ``int64``."""
    if numbers.dtype.kind == "u":
        _raise_first_bad(numbers > _INT64.max, values, what, _outside_int64(kind))


def _numeric_seconds(values: pd.Series, what: str) -> np.ndarray:
    """Numeric timestamps (column ``values``, described as ``what`` in messages) as ``int64``
    seconds, fractions truncated toward minus infinity; missing, non-numeric or out-of-range
    (beyond ``int64``) values raise ``ValueError``."""
    _check_present(values, what)
    if pd.api.types.is_integer_dtype(values.dtype):
        _check_int64(values.to_numpy(), values, what, "timestamp")
        return values.to_numpy(dtype=np.int64)
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    _raise_first_bad(~np.isfinite(numeric), values, what, "non-numeric timestamp")
    seconds = np.floor(numeric)
    # 2**63 is a float64 exactly; every float below it converts to int64 without wrapping.
    outside = (seconds < float(_INT64.min)) | (seconds >= 2.0**63)
    _raise_first_bad(outside, values, what, _outside_int64("timestamp"))
    return seconds.astype(np.int64)


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
        value = values.iloc[row]
        shown = value.item() if isinstance(value, np.generic) else value
        raise ValueError(
            f"{what}: {problem} {shown!r} in data row {row} (0-based; {int(bad.sum())} such row(s))"
        )


def _finish(
    frame: pd.DataFrame,
    name: str,
    fingerprint: str,
    source: str,
    fields: dict[str, str] | None = None,
) -> Interactions:
    """Normalise column order and dtypes, reject empty input and bad values, wrap.

    Args:
        frame: Columns ``user``, ``item``, ``rating``, ``timestamp`` (``int64`` seconds).
        name: Dataset name.
        fingerprint: Cache key.
        source: What was read (the file), for messages.
        fields: How messages name the ``user``, ``item`` and ``rating`` columns of the source
            (default ``"user ids"``, ``"item ids"``, ``"ratings"``).

    Returns:
        The interactions.

    Raises:
        ValueError: No rows, missing ids, integer ids beyond ``int64``, or ratings that are
            non-numeric or beyond the ``float32`` range.
    """
    if frame.empty:
        raise ValueError(f"{source}: no interactions (empty input)")
    fields = {"user": "user ids", "item": "item ids", "rating": "ratings", **(fields or {})}
    numeric = pd.to_numeric(frame["rating"], errors="coerce").to_numpy(dtype=np.float64)
    what = f"{source}: {fields['rating']}"
    _raise_first_bad(np.isnan(numeric), frame["rating"], what, "non-numeric rating")
    outside = ~(np.abs(numeric) <= np.finfo(np.float32).max)
    _raise_first_bad(outside, frame["rating"], what, "rating outside the float32 range:")
    frame = pd.DataFrame(
        {
            "user": _ids(frame["user"], f"{source}: {fields['user']}"),
            "item": _ids(frame["item"], f"{source}: {fields['item']}"),
            "rating": numeric.astype(np.float32),
            "timestamp": frame["timestamp"].to_numpy(dtype=np.int64),
        }
    )
    return Interactions(frame=frame, name=name, fingerprint=fingerprint)
