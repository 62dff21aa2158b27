"""Small run-level helpers: seeding, run directory, plain configs, atomic writes (and their stale temporary files),
whether a process is alive."""

from __future__ import annotations

import errno
import json
import math
import os
import pickle
import random
import re
import shutil
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from gaitgraph.errors import CheckpointError, DiskFullError, GaitGraphError, NotWritableError, readable, short_text

#: Out of space, quota exceeded, or over a file-size limit (RLIMIT_FSIZE).
_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: The temporary file of :func:`atomic_write`: ``.<name>.gaitgraph-<pid>@<host>-<random>.tmp`` (mkstemp's random
#: part is lower-case letters, digits and ``_``). The writer's pid and host tell a killed write from a running one.
TEMP_NAME = re.compile(r"\.(?P<name>.+)\.gaitgraph-(?P<pid>\d+)@(?P<host>[A-Za-z0-9-]*)-[a-z0-9_]+\.tmp")
#: A folder that cannot take a file: read-only file system, no permission, a file in the way.
_NOT_WRITABLE_ERRNOS = (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST)
#: What to change when an output folder cannot be written.
_OUTPUT_KEYS = "paths.output_root (runs; or hydra.run.dir) or paths.cache_dir (the pose cache)"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally make torch kernels deterministic."""
    import numpy as np
    import torch  # here, not at the top: config-only commands import this module and must start at once

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def run_dir_of(cfg: DictConfig) -> Path:
    """The run's output directory: Hydra's when a Hydra app runs, else ``cfg.paths.output_dir`` (compose API)."""
    if HydraConfig.initialized() and HydraConfig.get().runtime.output_dir:
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def plain(cfg: Any) -> Any:
    """A resolved config node as plain Python containers (anything else comes back unchanged)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def build(cfg: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate``, except that a platform error raised while building (a bad value the object
    itself rejects) reaches the caller as itself, not wrapped in Hydra's InstantiationException."""
    try:
        return instantiate(cfg, **kwargs)
    except InstantiationException as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, GaitGraphError):
            cause = cause.__cause__
        if cause is not None:
            raise cause from None
        raise


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place.

    No reader ever sees a half-written file under the final name, and a failed write leaves nothing behind.
    A write that fails for lack of space raises :class:`~gaitgraph.errors.DiskFullError` naming the file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        prefix = f".{path.name}.gaitgraph-{os.getpid()}@{host_tag()}-"
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=".tmp")
    except OSError as err:
        if err.errno not in _NOT_WRITABLE_ERRNOS:
            raise
        raise NotWritableError(
            f"{readable(path)}: cannot be written ({err.strerror}: {readable(err.filename or path.parent)}); "
            f"point {_OUTPUT_KEYS} at a folder you can write to"
        ) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file the usual mode
        with open(tmp, "rb") as done:  # on disk before the rename: a power cut cannot leave an empty file in place
            os.fsync(done.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if is_disk_full(err):
            free = shutil.disk_usage(path.parent).free
            raise DiskFullError(
                f"{path}: the write failed for lack of space ({free / 2**20:.0f} MiB free on that file system, "
                f"or a file-size limit); nothing was written and any earlier {path.name} is intact. Free some "
                "space or point paths.output_root / paths.cache_dir elsewhere."
            ) from err
        raise
    return path


def check_writable(folder: str | Path, key: str = _OUTPUT_KEYS) -> None:
    """Refuse ``folder`` (created later when absent) if nothing could be written there -- checked without creating
    anything, so a refused command leaves no trace. ``key`` is the setting that chooses it."""
    path = Path(folder).absolute()
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        reason = f"{readable(probe)} is a file, not a folder"
    elif os.statvfs(probe).f_flag & os.ST_RDONLY:
        reason = f"{readable(probe)} is on a read-only file system"
    elif not os.access(probe, os.W_OK | os.X_OK):
        reason = f"{readable(probe)} is not writable by this user"
    else:
        return
    raise NotWritableError(
        f"{readable(path)}: cannot be created or written, since {reason}. Point {key} at a folder you can write "
        "to, or make this one writable."
    )


def remove_stale_temps(folder: str | Path, depth: int = 0, name: str | None = None) -> list[Path]:
    """Remove the temporary files of :func:`atomic_write` that killed writes left in ``folder`` (and in the folders
    ``depth`` levels below it); return them. Only files named as :data:`TEMP_NAME` (of ``name`` when given) whose
    writer is gone from this host are removed: a live writer's and another host's stay (docs/trust.md)."""
    removed = []
    for path in _files(Path(folder), depth):
        found = TEMP_NAME.fullmatch(path.name)
        if found is None or (name is not None and found["name"] != name) or found["host"] != host_tag():
            continue
        if not process_alive(int(found["pid"])):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def _files(folder: Path, depth: int) -> list[Path]:
    """Regular files in ``folder`` and ``depth`` levels of its sub-folders (symbolic links are not followed)."""
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    files = [Path(e.path) for e in entries if e.is_file(follow_symlinks=False)]
    if depth > 0:
        for e in entries:
            if e.is_dir(follow_symlinks=False):
                files += _files(Path(e.path), depth - 1)
    return files


def host_name() -> str:
    """This machine's host name (what run claims and temporary file names record)."""
    return socket.gethostname()


def host_tag() -> str:
    """:func:`host_name` as it can stand in a file name: letters, digits and ``-``, at most 32 characters."""
    return re.sub(r"[^A-Za-z0-9-]", "-", host_name())[:32]


def process_start(pid: int) -> int | None:
    """When process ``pid`` of this host started, in clock ticks since boot (Linux ``/proc``); None elsewhere or
    when there is no such process. Told apart by it, a process that reuses a dead one's id is not taken for it."""
    stat = _proc_stat(pid)
    return int(stat[19]) if stat else None


def process_alive(pid: int, start: int | None = None) -> bool:
    """Whether process ``pid`` runs on this host (a zombie does not); with ``start`` (:func:`process_start` as
    recorded earlier), whether it is still that same process."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        pass
    stat = _proc_stat(pid)
    if stat is None:
        return not Path("/proc/self/stat").exists()  # /proc raced away: gone; no /proc at all: trust kill()
    return stat[0] != "Z" and (start is None or int(stat[19]) == start)


def _proc_stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state first), or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A checkpoint or weights file read on the CPU with ``torch.load(weights_only=True)``: tensors and plain
    containers only, never arbitrary pickled objects. Every failure is a :class:`CheckpointError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        import torch  # see seed_everything

        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if unsafe is None:
            raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(err)})") from None
        raise CheckpointError(
            f"{path}: holds pickled Python objects besides the weights (first: {unsafe.group(1)}); they were not "
            "loaded, since unpickling them can run any code. If you trust the file, save its weights once as a "
            "plain state_dict and use that copy:\n"
            f"  python -c \"import torch; c = torch.load('{path}', weights_only=False); "
            "torch.save(c.get('state_dict', c.get('model', c)), 'weights.pt')\""
        ) from None
    except Exception as err:  # noqa: BLE001 - torch raises many types for truncated or foreign files
        raise CheckpointError(
            f"{path}: not a readable checkpoint ({_reason(err)}); it may be truncated, or not a checkpoint at all"
        ) from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a checkpoint dict, found {type(state).__name__}")
    return state


def _reason(err: BaseException) -> str:
    """The informative line of a torch.load error, cut short."""
    text = str(err)
    # torch puts the cause a blank line or two after its "WeightsUnpickler error:" label
    found = re.search(r"WeightsUnpickler error:\s*([^\n]+)", text)
    line = found.group(1) if found else (text.strip().splitlines() or [type(err).__name__])[0]
    return short_text(line, 160)


def is_disk_full(err: BaseException) -> bool:
    """Whether ``err`` (or what caused it) is an out-of-space or file-size-limit failure."""
    while err is not None:
        if isinstance(err, OSError) and err.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(err) for text in ("No space left on device", "errno = 28", "File too large")):
            return True
        err = err.__cause__ or err.__context__
    return False


def current_umask() -> int:
    """The process umask, read without changing it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(data: Any, path: str | Path) -> Path:
    """Write JSON atomically (temp file + rename)."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=float) + "\n"))


def markdown_table(table: Any, cell: Callable[[Any], str] | None = None, index: bool = True) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (no extra dependency: pandas' own needs tabulate).

    ``cell`` formats each value (default: numbers to 4 significant digits, NaN/None as ``-``); ``index``
    writes the index as the first column, headed by its name. Numeric columns are right-aligned.
    """
    import pandas as pd

    cell = cell or _cell
    header = ([str(table.index.name or "")] if index else []) + [str(c) for c in table.columns]
    align = (["---"] if index else []) + [
        "---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in table.dtypes
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for label, row in table.iterrows():
        values = ([str(label)] if index else []) + [cell(v) for v in row.tolist()]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
