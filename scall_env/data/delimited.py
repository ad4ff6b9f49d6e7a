"""Any delimited text file with named (or positional) user, item, time and rating columns.

The fingerprint hashes the file's bytes together with the column and parsing options, since the
same file read with other columns is another dataset. Ids are read as text and become integers
only when every id of the column is a plain decimal integer within ``int64``, so ``"007"`` and
``"7"`` stay two ids; timestamps beyond ``int64`` are refused, never wrapped.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pandas as pd

from scall_env.cache import digest
from scall_env.data.columns import Interactions, _finish, _numeric_seconds, _text_ids
from scall_env.data.folders import DatasetNotFoundError

_PARSER_VERSION = 2
"""Enters the fingerprint: 2 keeps ids with leading zeros as text (1 read "007" as 7)."""


def load_delimited(
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
            # ids as text: "007" and "7" are different ids (see _text_ids)
            dtype={columns["user_col"]: str, columns["item_col"]: str},
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
    user, item, time = columns["user_col"], columns["item_col"], columns["time_col"]
    frame = pd.DataFrame(
        {
            "user": _text_ids(table[user], f"{file}: user ids (column {user!r})"),
            "item": _text_ids(table[item], f"{file}: item ids (column {item!r})"),
            "rating": 1.0 if rating_col is None else table[rating_col],
            "timestamp": _numeric_seconds(table[time], f"{file}: column {time!r}"),
        }
    )
    options = {**columns, "sep": sep, "header": header, "parser": _PARSER_VERSION}
    fingerprint = digest("delimited", hashlib.md5(raw).hexdigest(), options)
    return _finish(
        frame,
        "delimited",
        fingerprint,
        str(file),
        {
            "user": f"user ids (column {user!r})",
            "item": f"item ids (column {item!r})",
            "rating": f"ratings (column {rating_col!r})",
        },
    )
