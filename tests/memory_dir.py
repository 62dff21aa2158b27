"""A scratch folder in memory for a test that writes tens of thousands of small files: on the ext4 disk of the test
machines creating and removing them cost up to ten CPU-seconds of kernel time, on tmpfs a fraction of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The usual tmpfs mount (Linux); elsewhere, or where it is small (a container's 64 MiB), the test's own folder.
SHM = Path("/dev/shm")


@contextmanager
def scratch_in_memory(fallback: Path, room: int = 1 << 30) -> Iterator[Path]:
    """A new folder under /dev/shm when it is writable with ``room`` bytes free, removed afterwards (it holds
    memory); else ``fallback``, left to pytest."""
    if not (SHM.is_dir() and os.access(SHM, os.W_OK) and shutil.disk_usage(SHM).free >= room):
        yield fallback
        return
    folder = Path(tempfile.mkdtemp(prefix="gaitgraph-test-", dir=SHM))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
