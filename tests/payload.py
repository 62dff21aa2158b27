"""A pickle that runs code when it is loaded: the tests that check nothing unpickles code embed it in files."""

from __future__ import annotations

from pathlib import Path


class CodePayload:
    """Unpickled freely, it runs ``open(marker, "w")`` and so creates ``marker``: a stand-in for any code a crafted
    checkpoint or pose pickle could run."""

    def __init__(self, marker: str | Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")
