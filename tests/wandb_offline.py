"""Read back an offline W&B run (``wandb/offline-run-*/run-*.wandb``): what ``wandb sync`` would upload.

The file is a LevelDB-style log of protobuf ``Record`` messages: a 7-byte header (``:W&B``, magic, version),
then 32 KiB blocks of chunks, each with a 7-byte header (crc32 4, length 2, type 1: full/first/middle/last).
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_FILE_HEADER = 7
_CHUNK_HEADER = 7
_BLOCK = 32 * 1024
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


@dataclass
class OfflineRun:
    """The parts of an offline run a test or a user checks."""

    group: str = ""
    name: str = ""
    job_type: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    artifacts: list[tuple[str, str]] = field(default_factory=list)  # (name, type)
    exit_code: int | None = None

    def history_keys(self) -> set[str]:
        """Every key logged at some step."""
        return {key for row in self.history for key in row}


def _records(raw: bytes) -> list[bytes]:
    if raw[:4] != b":W&B":
        raise ValueError(f"not a W&B datastore: header {raw[:4]!r}, expected b':W&B'")
    records, parts, pos = [], [], _FILE_HEADER
    while pos + _CHUNK_HEADER <= len(raw):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK_HEADER:  # block trailer: padding only
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", raw[pos : pos + _CHUNK_HEADER])
        pos += _CHUNK_HEADER
        if pos + length > len(raw):  # the writer is mid-chunk: that record is not on disk yet
            break
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += left - _CHUNK_HEADER
            continue
        parts.append(raw[pos : pos + length])
        pos += length
        if kind in (_FULL, _LAST):
            records.append(b"".join(parts))
            parts = []
    return records


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)


def read_offline_run(path: str | Path) -> OfflineRun:
    """Parse one ``run-*.wandb`` file, or the single one inside an ``offline-run-*`` folder."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        found = sorted(path.glob("run-*.wandb"))
        if len(found) != 1:
            raise FileNotFoundError(f"{path}: expected one run-*.wandb file, found {len(found)}")
        path = found[0]
    run = OfflineRun()
    for data in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.group = record.run.run_group
            run.name = record.run.display_name
            run.job_type = record.run.job_type
            run.tags = list(record.run.tags)
            run.config.update({_key(i): json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            run.config.update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "summary":
            run.summary.update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "artifact":
            run.artifacts.append((record.artifact.name, record.artifact.type))
        elif kind == "exit":
            run.exit_code = record.exit.exit_code
    return run


def wait_offline_run(run_dir: str | Path, wait_s: float = 15.0) -> OfflineRun:
    """The one offline run under ``run_dir/wandb``, once W&B's service has written its exit record (or after
    ``wait_s``): ``finish()`` returns before the service process has flushed the file."""
    found = sorted((Path(run_dir) / "wandb").glob("offline-run-*"))
    assert len(found) == 1, f"expected one offline run under {run_dir}/wandb, found {found}"
    deadline = time.monotonic() + wait_s
    while (run := read_offline_run(found[0])).exit_code is None and time.monotonic() < deadline:
        time.sleep(0.2)
    return run
