"""Errors a user can act on when a pose source is malformed or missing."""

from __future__ import annotations

from pathlib import Path


class DatasetFormatError(ValueError):
    """A pose file does not match its documented format.

    The message always names the file, the location inside it (row, JSON key, frame), what the
    format expects there and what was found, plus an optional hint (e.g. how to obtain the data).
    """

    def __init__(
        self,
        path: str | Path,
        location: str,
        expected: str,
        found: str,
        hint: str | None = None,
    ) -> None:
        self.path = str(path)
        self.location = location
        self.expected = expected
        self.found = found
        self.hint = hint
        msg = f"{self.path}: {location}: expected {expected}, found {found}"
        if hint:
            msg += f"\n  hint: {hint}"
        super().__init__(msg)
