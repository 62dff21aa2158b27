"""One run per folder: a run claims its folder with a file created exclusively, before anything is written there.

:func:`acquire` creates ``<folder>/.gaitgraph-claim.json`` with ``O_CREAT | O_EXCL`` (of two processes creating it at
once, exactly one succeeds), holding the host, the process id and its start time. A live claim of another process
is a :class:`~gaitgraph.errors.RunDirInUseError` naming its host and process; a claim whose process is gone from
this host is stale: named in a warning and taken over; a claim of another host is never judged from here. Claims
are counted per process (the Hydra callback and ``train()`` both hold the same folder) and removed when the last
holder lets go, or when the process exits. See docs/trust.md#one-run-per-folder.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gaitgraph.engine import distributed
from gaitgraph.errors import RunDirInUseError
from gaitgraph.utils import host_name, process_alive, process_start, remove_stale_temps

log = logging.getLogger(__name__)

CLAIM = ".gaitgraph-claim.json"
#: A claim file still empty after this long was left by a process killed while writing its few bytes.
_WRITE_GRACE_S = 10.0
#: Folders this process has claimed, with the number of holders.
_held: dict[Path, int] = {}


def claims_here() -> bool:
    """Whether this process claims run folders: yes, except for the ranks other than 0 of a ``torchrun`` launch
    (every rank runs the whole application in the same folder; rank 0 holds it for all)."""
    return not distributed.launched_by_torchrun() or distributed.torchrun_rank() == 0


def acquire(folder: str | Path) -> bool:
    """Claim ``folder`` for this process (creating it); False when this process does not claim (:func:`claims_here`).

    Raises :class:`RunDirInUseError` when another live process holds it. Once claimed, temporary files that killed
    writes left in it are removed (:func:`~gaitgraph.utils.remove_stale_temps`).
    """
    if not claims_here():
        return False
    folder = Path(folder).resolve()
    if folder in _held:
        _held[folder] += 1
        return True
    folder.mkdir(parents=True, exist_ok=True)
    _claim(folder / CLAIM)
    _held[folder] = 1
    for path in remove_stale_temps(folder, depth=2):
        log.warning("removed %s, left by a write that was killed", path)
    return True


def release(folder: str | Path) -> None:
    """Let go of one hold on ``folder``; the claim file goes when the last one does (only a claim of this
    process is ever removed: a forked child inherits the bookkeeping, not the claim)."""
    folder = Path(folder).resolve()
    if folder not in _held:
        return
    _held[folder] -= 1
    if _held[folder] > 0:
        return
    del _held[folder]
    path = folder / CLAIM
    holder = _read(path)
    if holder is not None and _mine(holder):
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def holding(folder: str | Path) -> Iterator[None]:
    """Hold ``folder`` for the ``with`` block (see :func:`acquire`)."""
    held = acquire(folder)
    try:
        yield
    finally:
        if held:
            release(folder)


@atexit.register
def release_all() -> None:
    """Remove every claim this process still holds (a run that ended through ``sys.exit``)."""
    for folder in list(_held):
        _held[folder] = 1
        release(folder)


def identity() -> dict[str, Any]:
    """What a claim of this process records."""
    return {
        "host": host_name(),
        "pid": os.getpid(),
        "process_start": process_start(os.getpid()),
        "claimed": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv)[:300],
    }


def _claim(path: Path) -> None:
    """Create the claim file exclusively; take over a stale one (a few tries, for claims that race)."""
    for _ in range(3):
        if _create(path):
            return
        holder = _read(path)
        if holder == {}:  # removed meanwhile (its run ended): try again
            continue
        if holder is None:  # being written right now, or left unfinished by a kill during the write
            if time.time() - _mtime(path) < _WRITE_GRACE_S:
                raise RunDirInUseError(_in_use(path, "another run, claiming it at this moment"))
            log.warning("%s holds no readable claim (a run killed while writing it); taking the folder over", path)
        elif _mine(holder):
            return
        elif holder.get("host") != host_name():
            raise RunDirInUseError(_in_use(path, _who(holder), foreign=True))
        elif process_alive(holder["pid"], _int_or_none(holder.get("process_start"))):
            raise RunDirInUseError(_in_use(path, _who(holder)))
        else:
            log.warning("%s: the run that claimed this folder (%s) is gone; taking it over", path, _who(holder))
        _remove_if_unchanged(path, holder)
    raise RunDirInUseError(_in_use(path, "other runs, all starting at this moment"))


def _create(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        json.dump(identity(), f)
        f.flush()
        os.fsync(f.fileno())
    return True


def _remove_if_unchanged(path: Path, holder: dict[str, Any] | None) -> None:
    """Remove the stale claim ``holder`` read, unless another run has replaced it since (then it is judged again).

    The stale file is renamed away first, atomically: of several runs taking it over, one gets it."""
    aside = path.with_name(f"{CLAIM}.stale-{os.getpid()}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    if _read(aside) != holder:  # a fresh claim was created between our read and the rename: put it back
        with contextlib.suppress(FileExistsError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    """The claim's contents; None when the file is empty, half-written or not a claim; ``{}`` when it is gone."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    valid = isinstance(data, dict) and isinstance(data.get("host"), str) and type(data.get("pid")) is int
    return data if valid else None


def _int_or_none(value: Any) -> int | None:
    return value if type(value) is int else None


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _mine(holder: dict[str, Any]) -> bool:
    return holder.get("host") == host_name() and holder.get("pid") == os.getpid()


def _who(holder: dict[str, Any]) -> str:
    return f"process {holder.get('pid')} on host {holder.get('host')}, claimed {holder.get('claimed')}"


def _in_use(path: Path, who: str, foreign: bool = False) -> str:
    folder = path.parent
    gone = (
        f"; if that run is gone (it was on another machine, so it cannot be checked from here), delete {path}"
        if foreign
        else ""
    )
    return (
        f"{folder} is in use by {who}; nothing was changed. Two runs never share a folder: wait for that run to "
        f"end, or choose another hydra.run.dir{gone}."
    )
