"""On-disk caches: the cache folder, content digests, atomic writes and the trained-model cache.

Every cache file of the package is written through :func:`atomic_path` (a temporary file in the
same folder, renamed into place only once complete), so a reader never sees a half-written file,
and is named by a :func:`digest` of everything that determines its content. Nothing is pickled:
streams are ``.npz`` files, models are tensors plus JSON (loaded with ``weights_only=True``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

CACHE_DIR_ENV = "SCALL_CACHE_DIR"
"""Environment variable naming the cache folder."""


def default_cache_dir() -> Path:
    """``$SCALL_CACHE_DIR`` when set, else ``~/.cache/scall``."""
    env = os.environ.get(CACHE_DIR_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scall"


def _plain(value: Any) -> Any:
    """JSON fallback: numpy scalars and arrays as Python values, paths as strings."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"cannot digest a value of type {type(value).__name__}: {value!r}")


def canonical_json(value: Any) -> str:
    """A canonical JSON text of ``value`` (sorted keys; numpy values as Python ones)."""
    return json.dumps(value, sort_keys=True, default=_plain)


def digest(*parts: Any) -> str:
    """SHA-256 hex digest of the canonical JSON of ``parts``."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` once the block succeeds.

    The folder is created when missing. If the block raises, the temporary file is removed and
    ``path`` is untouched. The file gets the usual permissions (``0666`` less the umask), not the
    ``0600`` of :func:`tempfile.mkstemp`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`atomic_path` (never half-written)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def tensors_checksum(state: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of a state dict's tensors."""
    hasher = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        hasher.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        hasher.update(tensor.numpy().tobytes())
    return hasher.hexdigest()


class ModelCache:
    """Trained weights and their record, keyed by a digest of every setting that made them.

    Each entry is one file ``<folder>/<key>.pt`` holding the settings (JSON), the record (JSON),
    the tensors and their checksum. :meth:`load` serves an entry only when its stored settings
    equal the requested ones, its checksum matches and every value is finite; anything else
    (another configuration copied into place, a flipped bit, NaN weights, random bytes) is
    reported with a warning naming the file and treated as absent, so the caller retrains and
    overwrites it. An unwritable folder costs one warning and the cache is then skipped.

    Args:
        folder: Where the files live; ``None`` keeps nothing on disk.
    """

    def __init__(self, folder: str | os.PathLike | None) -> None:
        self.folder = None if folder is None else Path(folder)

    def path(self, settings: Mapping[str, Any]) -> Path | None:
        """The file that holds the entry of ``settings`` (``None`` without a folder)."""
        return None if self.folder is None else self.folder / f"{digest(settings)[:24]}.pt"

    def load(
        self, settings: Mapping[str, Any], device: torch.device
    ) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The stored ``(state, record)`` of ``settings``, or ``None`` when absent or invalid."""
        path = self.path(settings)
        if path is None or not path.exists():
            return None
        try:
            saved = torch.load(path, map_location=device, weights_only=True)
            stored_settings = json.loads(saved["settings"])
            state, record = saved["state"], json.loads(saved["record"])
            checksum = saved["checksum"]
        except Exception as exc:  # noqa: BLE001  (any unreadable file means: rebuild it)
            return self._reject(path, f"unreadable ({type(exc).__name__}: {exc})")
        if stored_settings != json.loads(canonical_json(settings)):
            return self._reject(path, "it was made with other settings")
        if tensors_checksum(state) != checksum:
            return self._reject(path, "its checksum does not match (the file is damaged)")
        if not all(bool(torch.isfinite(t).all()) for t in state.values()):
            return self._reject(path, "it holds non-finite weights")
        return state, record

    def save(
        self,
        settings: Mapping[str, Any],
        state: Mapping[str, torch.Tensor],
        record: Mapping[str, Any],
    ) -> None:
        """Store an entry atomically; an unwritable folder warns once and disables the cache."""
        path = self.path(settings)
        if path is None:
            return
        payload = {
            "settings": canonical_json(settings),
            "record": json.dumps(record, default=_plain),  # key order kept: it is the CSV's
            "state": {k: v.detach().cpu() for k, v in state.items()},
            "checksum": tensors_checksum(state),
        }
        try:
            with atomic_path(path) as tmp:
                torch.save(payload, tmp)
        except OSError as exc:
            warnings.warn(
                f"cannot write the model cache in {self.folder} ({exc}); continuing without it",
                RuntimeWarning,
                stacklevel=2,
            )
            self.folder = None

    @staticmethod
    def _reject(path: Path, why: str) -> None:
        warnings.warn(
            f"ignoring the cached model {path}: {why}; it will be rebuilt",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
