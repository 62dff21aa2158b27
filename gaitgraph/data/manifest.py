"""A cache key for folder datasets that does not stat millions of files on every start.

The manifest (a JSON file in the cache folder) holds one entry per unit folder (subject) of a
:class:`~gaitgraph.data.readers.FolderReader`: the unit's file count, total bytes and a digest of every
file's (name, size, modification time), and a hash of the modification times of the unit folder and of the
folders below it, down to the ones that hold the files. A start reads only those folder times (one
directory listing per unit and per intermediate folder); a unit whose folder times changed (a file or
folder was added, removed or renamed inside it) is scanned again file by file, in ``workers`` processes.
A file rewritten in place under the same name leaves the folder times alone: ``dataset.cache_refresh=true``
scans every file again (or use ``dataset.cache_key=stat`` or ``content``).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from gaitgraph.data.parallel import ordered_map
from gaitgraph.data.readers import FolderReader, digest, scan_units
from gaitgraph.utils import write_json

log = logging.getLogger(__name__)

MANIFEST_VERSION = 1
_ENTRY_KEYS = {"files", "bytes", "digest", "times"}


def folder_times(top: Path, depth: int) -> list[int]:
    """``st_mtime_ns`` of ``top`` and of every folder down to ``depth`` levels below it, in sorted walk order."""
    times = [os.stat(top).st_mtime_ns]
    level = [str(top)]
    for _ in range(depth):
        below = []
        for folder in level:
            for entry in sorted((e for e in os.scandir(folder) if e.is_dir()), key=lambda e: e.name):
                times.append(entry.stat().st_mtime_ns)
                below.append(entry.path)
        level = below
    return times


def signature(reader: FolderReader, path: Path, refresh: bool = False) -> list[tuple[str, int, int, str]]:
    """(unit, files, bytes, digest) of every unit, from the manifest at ``path``; stale units are re-scanned."""
    old = _load(path)
    units = reader.units()
    times = {u: digest(folder_times(reader.unit_dir(u), reader.file_depth)) for u in units}
    stale = [u for u in units if refresh or old.get(u, {}).get("times") != times[u]]
    entries = {u: old[u] for u in units if u not in stale}
    if stale:
        log.info("%s: scanning %d of %d folders for the cache manifest", reader.label, len(stale), len(units))
        scans = ordered_map(scan_units, reader, stale, reader.workers, f"Scanning {reader.label}", "folder")
        for group in scans:
            for unit, entry in group:
                entries[unit] = {**entry, "times": times[unit]}
    if stale or set(old) != set(units):
        write_json({"version": MANIFEST_VERSION, "root": str(reader.root), "units": entries}, path)
    return [(u, entries[u]["files"], entries[u]["bytes"], entries[u]["digest"]) for u in units]


def _load(path: Path) -> dict[str, Any]:
    """The manifest's unit entries; an absent, damaged or outdated manifest counts as empty (all stale)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or not isinstance(data.get("units"), dict):
        return {}
    return {u: e for u, e in data["units"].items() if isinstance(e, dict) and _ENTRY_KEYS <= set(e)}
