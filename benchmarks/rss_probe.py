"""A reader-worker task that reports its process's peak RSS. It lives apart from benchmarks/data.py so that the
worker imports only this and the reader (as a real ingest's workers do), not the benchmark's heavier imports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any


def parse_and_measure(reader: Any, units: Sequence[str]) -> int:
    """Parse ``units``, then return this process's peak RSS in KiB (``VmHWM``: ``ru_maxrss`` would keep the
    forking parent's peak across exec)."""
    for unit in units:
        reader.read_unit(unit)
    status = Path("/proc/self/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
