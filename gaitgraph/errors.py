"""Errors a user can act on. Every entry point prints one of these as a short paragraph, without a traceback
(``HYDRA_FULL_ERROR=1`` shows it), and exits non-zero; see :mod:`gaitgraph.cli`.

Each message says what went wrong, where (file, row, config key, step) and what to do about it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class GaitGraphError(Exception):
    """Base of the platform's own errors (the ones :mod:`gaitgraph.cli` reports without a traceback)."""

    #: Short name of the kind of mistake, printed before the message.
    kind = "error"

    def __reduce__(self) -> tuple:
        # Subclasses take other constructor arguments than their message: rebuild without calling __init__, so
        # an error raised in a spawned DDP rank reaches the parent process intact.
        return (_restore, (type(self), self.args, self.__dict__))


class DatasetFormatError(GaitGraphError, ValueError):
    """A pose file does not match its documented format (docs/formats.md).

    The message always names the file, the location inside it (row, JSON key, frame), what the
    format expects there and what was found, plus an optional hint (e.g. how to obtain the data).
    """

    kind = "data error"

    def __init__(
        self,
        path: str | Path,
        location: str,
        expected: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        self.path = readable(path)
        # Parts quoted from the file are cut, so a wrong file (one huge "header" line) is never echoed.
        self.location = short_text(readable(location), 200)
        self.expected = expected
        self.found = short_text(readable(found), 200)
        self.hint = hint
        msg = f"{self.path}: {self.location}: expected {expected}, found {self.found}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)


class ConfigError(GaitGraphError, ValueError):
    """A configuration value is invalid: names the key, the value found and what is allowed."""

    kind = "config error"

    def __init__(self, key: str, value: Any, allowed: str, hint: str | None = None) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        self.hint = hint
        # a path is the one thing the user must see whole; a list or a file's text is cut
        msg = f"{key}={short_repr(value, 240 if isinstance(value, str) else 80)}: expected {allowed}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)


class CheckpointError(GaitGraphError, ValueError):
    """A checkpoint cannot be used: unreadable, unsafe, of another model, or of another recipe."""

    kind = "checkpoint error"


class RunDirInUseError(GaitGraphError):
    """A fresh run was started in a directory that already holds another run's checkpoints or results."""

    kind = "run directory in use"


class NonFiniteError(GaitGraphError, FloatingPointError):
    """Training produced a NaN or infinite loss, gradient or metric; the last good checkpoint is untouched."""

    kind = "training diverged"


class Interrupted(GaitGraphError):
    """The run was stopped by a signal (SIGTERM from a scheduler, Ctrl-C) after its current step was finished and
    saved; ``exit_code`` is what a shell reports for that signal (143 for SIGTERM, 130 for SIGINT)."""

    kind = "interrupted"

    def __init__(self, message: str, exit_code: int, resumable: bool = True) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        # Extra overrides of the command that continues the run (the entry point prints it); None: no such command.
        self.resume_overrides: list[str] | None = [] if resumable else None


class MemoryBudgetError(GaitGraphError, MemoryError):
    """The estimated peak memory of a run exceeds what the machine or GPU has."""

    kind = "not enough memory"


class DiskFullError(GaitGraphError, OSError):
    """A write failed for lack of space (or a file-size limit); nothing half-written was left behind."""

    kind = "disk full"


class NotWritableError(GaitGraphError, OSError):
    """An output folder (run directory, cache) cannot be created or written: read-only, no permission, a file."""

    kind = "folder not writable"


class StudyError(GaitGraphError):
    """An Optuna study cannot take this sweep (e.g. its search space differs from the study's)."""

    kind = "study error"


def _restore(cls: type, args: tuple, state: dict) -> GaitGraphError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


def readable(text: Any) -> str:
    """``text`` (a path, a file name, a message) printable on any stream and log file: bytes of a file name that
    are not UTF-8 (which Python keeps as lone surrogates) are shown as ``\\xNN`` instead of failing the write."""
    text = str(text)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate that no file name produced: escape it as it is
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return raw.decode("utf-8", "backslashreplace")


def short_repr(value: Any, limit: int = 80) -> str:
    """``repr`` of a value, cut to ``limit`` characters so a message never carries a whole file or list."""
    return short_text(repr(value), limit)


def short_text(text: str, limit: int = 80) -> str:
    """``text`` cut to about ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[: max(limit - 30, 10)]}... ({len(text):,} characters)"
