"""Interaction sources: one interface that returns raw interactions for every supported dataset.

:func:`load_interactions` returns an :class:`Interactions` whose ``frame`` has the columns
``user``, ``item`` (raw ids as in the source: ``int64``, or pandas strings for text ids),
``rating`` (``float32``) and ``timestamp`` (``int64`` seconds), in source order with a fresh
``RangeIndex``. Nothing is filtered, sorted or renumbered here: that is the stream's job.

Sources (one module each):

* ``ml-1m`` and ``ml-100k`` (:mod:`~scall_env.data.movielens`): MovieLens files found under a
  data folder (plain or inside the official zip, read without extracting), downloaded into the
  cache folder when absent, and always checked against the official md5 so that corrupt or
  truncated files never half-load.
* ``yelp`` and ``amazon-book`` (:mod:`~scall_env.data.reviews`): JSON-lines review files
  (optionally gzip-compressed).
* ``delimited`` (:mod:`~scall_env.data.delimited`): any delimited text file with named (or
  positional) columns.
* ``synthetic`` (:mod:`~scall_env.data.synthetic`): a seeded, vectorised generator with power-law
  popularity, users and items arriving through the stream, user activity fading after arrival
  and optional item-popularity drift.

Each dataset is registered below with the options its loader accepts; anything else is refused
before the loader runs. Data folders: ``$SCALL_DATA_DIR`` (else the cache folder) is searched,
then the cache folder ``$SCALL_CACHE_DIR`` (else ``~/.cache/scall``), where downloads land.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scall_env.cache import default_cache_dir
from scall_env.data.columns import COLUMNS, Interactions
from scall_env.data.delimited import load_delimited
from scall_env.data.folders import DatasetNotFoundError, default_data_dir
from scall_env.data.movielens import (
    MOVIELENS,
    ChecksumError,
    MovieLensSource,
    load_ml_1m,
    load_ml_100k,
)
from scall_env.data.reviews import load_amazon_book, load_yelp
from scall_env.data.synthetic import load_synthetic, synthetic_interactions

__all__ = [
    "COLUMNS",
    "DATASETS",
    "MOVIELENS",
    "ChecksumError",
    "DatasetNotFoundError",
    "Interactions",
    "MovieLensSource",
    "check_dataset",
    "default_cache_dir",
    "default_data_dir",
    "load_interactions",
    "synthetic_interactions",
]


@dataclass(frozen=True)
class _Loader:
    """A dataset's loader and the keyword options it accepts.

    Attributes:
        name: The dataset name.
        load: Called as ``load(data_dir, **options)`` with ``data_dir`` a ``Path`` or ``None``.
        options: Every option name ``load`` takes besides ``data_dir``, in the order messages
            list them.
    """

    name: str
    load: Callable[..., Interactions]
    options: tuple[str, ...]


_SYNTHETIC_OPTIONS = (
    "n_users",
    "n_items",
    "n_interactions",
    "user_exponent",
    "item_exponent",
    "drift",
    "user_drift",
    "initial_users",
    "initial_items",
    "seed",
)
_DELIMITED_OPTIONS = ("path", "sep", "user_col", "item_col", "time_col", "rating_col", "header")

_LOADERS: dict[str, _Loader] = {
    loader.name: loader
    for loader in (
        _Loader("ml-1m", load_ml_1m, ("path", "download")),
        _Loader("ml-100k", load_ml_100k, ("path", "download")),
        _Loader("yelp", load_yelp, ("path",)),
        _Loader("amazon-book", load_amazon_book, ("path",)),
        _Loader("delimited", load_delimited, _DELIMITED_OPTIONS),
        _Loader("synthetic", load_synthetic, _SYNTHETIC_OPTIONS),
    )
}

DATASETS: tuple[str, ...] = tuple(_LOADERS)
"""Names accepted by :func:`load_interactions`."""


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
      ``rating_col``, ``header``; see :func:`~scall_env.data.delimited.load_delimited` for
      defaults.
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
    check_dataset(dataset, options)
    return _LOADERS[dataset].load(None if data_dir is None else Path(data_dir), **options)


def check_dataset(dataset: str, options: Mapping[str, Any]) -> None:
    """Checks a dataset name and the names of its options, without loading anything.

    Args:
        dataset: The name to check against :data:`DATASETS`.
        options: The options meant for its loader (only their names are checked).

    Raises:
        ValueError: Unknown dataset.
        TypeError: An option the dataset does not take (the message lists those it takes).
    """
    loader = _LOADERS.get(dataset) if isinstance(dataset, str) else None
    if loader is None:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    unknown = sorted(set(options) - set(loader.options))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(unknown)} for dataset {dataset!r}; "
            f"allowed: {', '.join(loader.options) or 'none'}"
        )
