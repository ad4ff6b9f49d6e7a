"""Where dataset files are looked for: the data folder, then the cache folder.

``$SCALL_DATA_DIR`` (else the cache folder) is searched first, then the cache folder
``$SCALL_CACHE_DIR`` (else ``~/.cache/scall``, see :func:`scall_env.cache.default_cache_dir`),
where downloads land.
"""

from __future__ import annotations

import os
from pathlib import Path

from scall_env.cache import default_cache_dir

DATA_DIR_ENV = "SCALL_DATA_DIR"
"""Environment variable naming the data folder."""


class DatasetNotFoundError(FileNotFoundError):
    """The files of a dataset are not where they were looked for and could not be downloaded."""


def default_data_dir() -> Path:
    """Folder searched for dataset files when no ``data_dir`` is given.

    Returns:
        ``$SCALL_DATA_DIR`` when set, else :func:`scall_env.cache.default_cache_dir`.
    """
    env = os.environ.get(DATA_DIR_ENV)
    return Path(env).expanduser() if env else default_cache_dir()


def _search_folders(data_dir: Path | None) -> list[Path]:
    """The data folder (given or default) followed by the cache folder, without repeats."""
    folders = [data_dir if data_dir is not None else default_data_dir(), default_cache_dir()]
    return list(dict.fromkeys(folder.expanduser() for folder in folders))
