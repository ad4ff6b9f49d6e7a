"""Fault injection into the caches: whatever is damaged, nothing wrong is ever served.

* the stream cache (``<cache>/streams/*.npz``): truncated, random bytes, a valid stream of another
  configuration in its place, a cache folder that cannot be written;
* the segment-0 model cache (``<cache>/segment0/*.pt``), through the env: a bit flipped inside a
  tensor, a valid file of another seed or budget in its place, NaN weights with a valid checksum,
  random bytes: each is rebuilt with one warning naming the file, and the env observes exactly
  what a clean run observes;
* a write killed half-way (an exception inside :func:`scall_env.cache.atomic_path`) leaves neither
  the file nor a temporary file, and a temporary file left by a hard kill is never read;
* ``scall-compare --resume``: a finished run is reused only under the same settings, and a run
  whose results or sizes file is damaged is run again (with a note), not a traceback.
"""

from __future__ import annotations

import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from _tiny import TINY_DATA, tiny_env

import scall_cli.compare
import scall_env  # noqa: F401  (registers the environment ids)
import scall_env.cache
import scall_env.stream
from scall_env.cache import atomic_path, tensors_checksum
from scall_env.stream import Stream, StreamConfig, load_stream

STREAM_CONFIG = StreamConfig(k_core=3, n_segments=4)
TINY_ENV = tiny_env(n_segments=4, n_groups=8, search_steps=2, max_chunks=2, device="cpu")
ACTIONS = [np.array([0.2, -0.4, 0.6], np.float32), np.array([-0.5, 0.3, -0.1], np.float32)]


def rebuild_warnings(record: list[warnings.WarningMessage]) -> list[str]:
    """The texts of the RuntimeWarnings among ``record``."""
    return [str(w.message) for w in record if issubclass(w.category, RuntimeWarning)]


# --------------------------------------------------------------------------- stream cache
def stream(cache: Path | str) -> Stream:
    return load_stream("synthetic", STREAM_CONFIG, cache_dir=cache, **TINY_DATA)


def assert_same_stream(a: Stream, b: Stream) -> None:
    for name in ("users", "items", "timestamps", "bounds", "user_labels", "item_labels"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert all(np.array_equal(x, y) for x, y in zip(a.replay, b.replay, strict=True))
    assert (a.config, a.fingerprint) == (b.config, b.fingerprint)


@pytest.fixture(scope="module")
def clean_stream() -> Stream:
    return load_stream("synthetic", STREAM_CONFIG, use_cache=False, **TINY_DATA)


def truncate(path: Path, tmp: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def random_bytes(path: Path, tmp: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(path.stat().st_size))


def another_configuration(path: Path, tmp: Path) -> None:
    other = load_stream(
        "synthetic", StreamConfig(k_core=3, n_segments=3), cache_dir=tmp / "other", **TINY_DATA
    )
    (other_file,) = (tmp / "other" / "streams").glob("*.npz")
    assert other.n_segments == 3
    shutil.copyfile(other_file, path)


@pytest.mark.parametrize("damage", [truncate, random_bytes, another_configuration])
def test_damaged_stream_cache_is_rebuilt(
    damage: Callable[[Path, Path], None], tmp_path: Path, clean_stream: Stream
) -> None:
    cache = tmp_path / "cache"
    stream(cache)
    (path,) = (cache / "streams").glob("*.npz")
    damage(path, tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        rebuilt = stream(cache)
    (message,) = rebuild_warnings(record)
    assert str(path) in message and "rebuilding the stream" in message
    assert_same_stream(rebuilt, clean_stream)
    with warnings.catch_warnings():  # the rebuilt file took its place and is served silently
        warnings.simplefilter("error", RuntimeWarning)
        assert_same_stream(stream(cache), clean_stream)


def cache_folder_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "cache").write_text("a file where the cache folder should be")
    return tmp_path / "cache"


def permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A read-only folder, as the writer sees it (root may write into chmod-ed folders)."""

    def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied", str(tmp_path / "cache"))

    monkeypatch.setattr(scall_env.cache.tempfile, "mkstemp", refuse)
    return tmp_path / "cache"


@pytest.mark.parametrize("unwritable", [cache_folder_is_a_file, permission_denied])
def test_unwritable_stream_cache_works_without_it(
    unwritable: Callable[[Path, pytest.MonkeyPatch], Path],
    tmp_path: Path,
    clean_stream: Stream,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cache = unwritable(tmp_path, monkeypatch)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        built = stream(cache)
    (message,) = rebuild_warnings(record)
    assert "cannot write the stream cache" in message and "continuing without it" in message
    assert_same_stream(built, clean_stream)
    assert not list(tmp_path.rglob("*.npz")) and not list(tmp_path.rglob("*.tmp"))


# ------------------------------------------------------------------ segment-0 model cache
def play(cache: Path, seed: int = 0, **kwargs: Any) -> list[np.ndarray]:
    """Observations of a reset and two steps (a commit included) of the tiny synthetic env."""
    env = gym.make("Scall-Synthetic-v0", cache_dir=cache, **{**TINY_ENV, **kwargs})
    observations = [env.reset(seed=seed)[0]]
    observations += [env.step(action)[0] for action in ACTIONS]
    env.close()
    return observations


def model_file(cache: Path) -> Path:
    (path,) = (cache / "segment0").glob("*.pt")
    return path


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> list[np.ndarray]:
    return play(tmp_path_factory.mktemp("clean"))


def flip_a_bit_in_a_tensor(path: Path, tmp: Path) -> None:
    """Flip one bit of the largest tensor's bytes in the file itself (the zip stays readable)."""
    saved = torch.load(path, weights_only=True)
    largest = max(saved["state"].values(), key=lambda t: t.numel())
    needle = largest.numpy().tobytes()[:64]
    raw = bytearray(path.read_bytes())
    at = raw.find(needle)
    assert at > 0 and raw.find(needle, at + 1) < 0
    raw[at + 5] ^= 0x08
    path.write_bytes(bytes(raw))
    assert torch.load(path, weights_only=True)["checksum"] == saved["checksum"]  # still loads


def file_of_another_seed(path: Path, tmp: Path) -> None:
    play(tmp / "seed1", seed=1)
    shutil.copyfile(model_file(tmp / "seed1"), path)


def file_of_another_budget(path: Path, tmp: Path) -> None:
    play(tmp / "budget6", budget=6)
    shutil.copyfile(model_file(tmp / "budget6"), path)


def nan_weights_with_valid_checksum(path: Path, tmp: Path) -> None:
    saved = torch.load(path, weights_only=True)
    weight = next(t for name, t in saved["state"].items() if t.is_floating_point())
    weight.view(-1)[0] = float("nan")
    saved["checksum"] = tensors_checksum(saved["state"])
    torch.save(saved, path)


def random_model_bytes(path: Path, tmp: Path) -> None:
    path.write_bytes(np.random.default_rng(1).bytes(path.stat().st_size))


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (flip_a_bit_in_a_tensor, "checksum does not match"),
        (file_of_another_seed, "other settings"),
        (file_of_another_budget, "other settings"),
        (nan_weights_with_valid_checksum, "non-finite"),
        (random_model_bytes, "unreadable"),
    ],
)
def test_damaged_model_cache_is_rebuilt_and_observed_as_clean(
    damage: Callable[[Path, Path], None], why: str, tmp_path: Path, clean_run: list[np.ndarray]
) -> None:
    cache = tmp_path / "cache"
    play(cache)
    path = model_file(cache)
    damage(path, tmp_path)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        observed = play(cache)
    (message,) = rebuild_warnings(record)
    assert str(path) in message and why in message and "rebuilt" in message
    for got, want in zip(observed, clean_run, strict=True):
        np.testing.assert_array_equal(got, want)
    with warnings.catch_warnings():  # rebuilt in place: served silently, same observations
        warnings.simplefilter("error", RuntimeWarning)
        again = play(cache)
    for got, want in zip(again, clean_run, strict=True):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------- writes killed half-way
class Killed(BaseException):
    """Stands for the process dying (not an ``Exception``: nothing may swallow it)."""


def test_killed_atomic_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "folder" / "entry.bin"
    with pytest.raises(Killed), atomic_path(target) as tmp:
        tmp.write_bytes(b"half of it")
        raise Killed
    assert not target.exists()
    assert list((tmp_path / "folder").iterdir()) == []  # no temporary file either
    target.write_bytes(b"old, complete")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"new, half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old, complete"
    assert sorted(p.name for p in target.parent.iterdir()) == ["entry.bin"]


def die_while_writing(file: Any) -> None:
    """Write the start of a zip file to ``file`` (a path or a handle), then die."""
    if hasattr(file, "write"):
        file.write(b"PK\x03\x04half")
    else:
        Path(file).write_bytes(b"PK\x03\x04half")
    raise Killed


def savez_dies(file: Any, *arrays: object, **named: object) -> None:
    die_while_writing(file)


def torch_save_dies(obj: object, file: Any, *args: object, **kwargs: object) -> None:
    die_while_writing(file)


def files(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_killed_cache_writes_leave_no_file(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clean_stream: Stream,
    clean_run: list[np.ndarray],
) -> None:
    cache = tmp_path / "cache"
    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(scall_env.stream.np, "savez", savez_dies)
        stream(cache)
    assert files(cache) == []

    with monkeypatch.context() as patch, pytest.raises(Killed):
        patch.setattr(scall_env.cache.torch, "save", torch_save_dies)
        play(cache)  # the stream is written, segment 0 is trained, its write dies
    (stream_file,) = files(cache)
    assert stream_file.startswith("streams/")

    # a hard kill (no clean-up at all) leaves a temporary file: it is never read as an entry
    (cache / "segment0" / ".leftover.pt.abc123.tmp").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        observed = play(cache)
        assert_same_stream(stream(cache), clean_stream)
    for got, want in zip(observed, clean_run, strict=True):
        np.testing.assert_array_equal(got, want)


# ------------------------------------------------------------------ stale or broken resumes
RESUME_ENV = {**TINY_ENV, "search": "fixed", "search_steps": 1}


@pytest.fixture
def resumable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[list[str], str]]:
    """``compare(*argv)`` runs ``scall-compare`` on one finished comparison and returns the runs
    it trained (the others were reused) and what it printed."""
    monkeypatch.chdir(tmp_path)
    trained: list[str] = []
    real_run_agent = scall_cli.compare.run_agent

    def counting(algo: str, env_id: str, **kwargs: Any) -> Any:
        trained.append(f"{algo}/seed{kwargs['seed']}")
        return real_run_agent(algo, env_id, **kwargs)

    monkeypatch.setattr(scall_cli.compare, "run_agent", counting)
    env_kwargs = {**RESUME_ENV, "cache_dir": str(tmp_path / "cache")}
    base = ["--env", "Scall-Synthetic-v0", "--agents", "frequency", "--seeds", "0", "1",
            "--output", str(tmp_path / "out"), "--env-kwargs", json.dumps(env_kwargs),
            "--no-progress", "--resume"]  # fmt: skip

    def compare(*argv: str, capsys: pytest.CaptureFixture[str]) -> tuple[list[str], str]:
        trained.clear()
        assert scall_cli.compare.main([*base, *argv]) == 0
        return list(trained), capsys.readouterr().out

    return compare


def run_folder(tmp_path: Path, seed: int) -> Path:
    return tmp_path / "out" / "runs" / "frequency" / f"seed{seed}"


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (["--total-timesteps", "2"], "total_timesteps: null -> 2"),
        (["--env-kwargs", '{"budget": 6}'], "env_kwargs.budget: 8 -> 6"),
        (["--config", "beta.yaml"], "hyperparams.beta: 0.5 -> 0.25"),
    ],
)
def test_resume_reruns_only_what_changed_settings(
    resumable: Callable[..., tuple[list[str], str]],
    change: list[str],
    what: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "beta.yaml").write_text("hyperparams: {frequency: {beta: 0.25}}\n")
    trained, _ = resumable(capsys=capsys)
    assert trained == ["frequency/seed0", "frequency/seed1"]
    trained, _ = resumable(capsys=capsys)
    assert trained == []  # same settings: both reused
    trained, printed = resumable(*change, capsys=capsys)
    assert trained == ["frequency/seed0", "frequency/seed1"]
    assert printed.count("running it again") == 2 and what in printed
    trained, _ = resumable(*change, capsys=capsys)
    assert trained == []  # the re-runs are now the finished runs of the new settings


def break_results_json(run: Path) -> None:
    path = run / "results.json"
    path.write_text(path.read_text()[:200])


def drop_fingerprint(run: Path) -> None:
    path = run / "results.json"
    results = json.loads(path.read_text())
    del results["fingerprint"]
    path.write_text(json.dumps(results))


def break_sizes(run: Path) -> None:
    (run / "sizes_last_segment.npz").write_bytes(b"PK\x03\x04 not a zip")


@pytest.mark.parametrize(
    ("damage", "note"),
    [
        (break_results_json, "results.json is unreadable"),
        (drop_fingerprint, "no valid settings fingerprint"),
        (break_sizes, "sizes_last_segment.npz is unreadable"),
    ],
)
def test_resume_reruns_a_damaged_run_only(
    resumable: Callable[..., tuple[list[str], str]],
    damage: Callable[[Path], None],
    note: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    resumable(capsys=capsys)
    damage(run_folder(tmp_path, 1))
    trained, printed = resumable(capsys=capsys)
    assert trained == ["frequency/seed1"]
    assert note in printed and "frequency/seed1: running it again" in printed
    results = json.loads((run_folder(tmp_path, 1) / "results.json").read_text())
    assert results["settings"]["seed"] == 1 and len(results["segments"]) == 4
