"""Argument parsing shared by the command lines: argument types, common options, error exits.

Every ordinary mistake ends the same way: exit status 2 and one line ``<prog>: error: <what was
wrong and what is allowed>`` on stderr, and no output folder left behind (the folders a failed
run created are removed, see :func:`removed_on_error`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym

from agents.runlock import RunInUseError
from scall_env.recsys import DivergenceError

#: Errors that a bad configuration raises in the env, the stream or the harness (a learning rate
#: that makes training diverge included); the command lines report them as
#: ``<prog>: error: <message>`` with exit status 2 instead of a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    FileNotFoundError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    RunInUseError,
    DivergenceError,
)


class _OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (exit status 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def one_line(text: str) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(text.split())


def new_parser(
    doc: str | None, formatter_class: type[argparse.HelpFormatter] | None = None
) -> argparse.ArgumentParser:
    """A parser whose description is ``doc`` (the module docstring), its layout kept.

    Args:
        doc: The description, normally the command's module docstring.
        formatter_class: Help formatter; default :class:`argparse.RawDescriptionHelpFormatter`
            (the description keeps its line breaks, option help is re-wrapped).
    """
    return _OneLineParser(
        description=doc, formatter_class=formatter_class or argparse.RawDescriptionHelpFormatter
    )


def json_object(text: str) -> dict[str, Any]:
    """Parse a JSON object given on the command line (an argparse ``type``)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(
            f"expected a JSON object like '{{\"key\": 1}}', got {text!r}"
        )
    return value


def int_at_least(low: int) -> Callable[[str], int]:
    """An argparse ``type`` that parses an integer ``>= low``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from exc
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {value}")
        return value

    return parse


positive_int = int_at_least(1)
"""Parse an integer >= 1 (an argparse ``type``)."""
non_negative_int = int_at_least(0)
"""Parse an integer >= 0, such as a seed (an argparse ``type``)."""


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` -> ``(key, value)``: the value read as JSON when it parses, else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_device(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    """``--device``: the torch device of the agent and the recommender."""
    shown = "%(default)s" if default is not None else "auto"
    parser.add_argument(
        "--device",
        default=default,
        help=f"torch device of the agent and recommender: auto, cpu, cuda (default: {shown})",
    )


def add_no_progress(parser: argparse.ArgumentParser, what: str = "the progress bar") -> None:
    """``--no-progress``: hide the training progress bars."""
    parser.add_argument("--no-progress", action="store_true", help=f"hide {what}")


def add_baseline_trials(parser: argparse.ArgumentParser) -> None:
    """``--baseline-trials``: run the search's trials also for the baselines that do not use them
    (by default they only commit; see :mod:`agents.baselines`)."""
    parser.add_argument(
        "--baseline-trials",
        action="store_true",
        help="run the search's trials also for baselines that do not use them (uniform, "
        "frequency, random, fixed; by default they only commit)",
    )


def check_env(parser: argparse.ArgumentParser, env_id: str) -> None:
    """Exit with a usage error (status 2) unless ``env_id`` is a registered Gymnasium env."""
    if env_id not in gym.registry:
        scall_ids = sorted(k for k in gym.registry if k.startswith("Scall-"))
        parser.error(f"unknown env {env_id!r}; registered: {', '.join(scall_ids)}")


def fail(parser: argparse.ArgumentParser, exc: BaseException | str) -> NoReturn:
    """Exit with status 2 and ``<prog>: error: <exc>`` (one line) on stderr."""
    parser.exit(2, f"{parser.prog}: error: {one_line(str(exc))}\n")


def check_output_dir(path: Path, option: str) -> None:
    """Raise ``ValueError`` unless ``path`` is, or can be created as, a writable folder.

    Args:
        path: The output folder.
        option: How the user gave it (e.g. ``"--save-path"``), for the message.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        where = "is" if existing == path else f"is inside {existing}, which is"
        raise ValueError(f"{option} {path} {where} a file; give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {existing} is not writable; give a writable folder")


@contextlib.contextmanager
def removed_on_error(path: Path) -> Iterator[None]:
    """Remove the folders that the block created on the way to ``path`` if it raises a user
    error (:data:`USER_ERRORS`), so a failed run leaves no folder behind.

    A :class:`~agents.runlock.RunInUseError` removes nothing: another live process (which may
    have created the folder meanwhile) is working there.
    """
    created = None
    for folder in (path, *path.parents):
        if folder.exists():
            break
        created = folder
    try:
        yield
    except RunInUseError:
        raise
    except USER_ERRORS:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise
