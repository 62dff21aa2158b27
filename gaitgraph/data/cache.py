"""HDF5 cache of parsed and preprocessed poses, so no run parses a CSV/JSON/pickle twice.

Two levels, each one HDF5 file keyed by a fingerprint:
  raw        = reader output, keyed by (source files, reader config without ``workers``);
  processed  = preprocess(raw), keyed by (raw fingerprint, preprocessing config, and the skeleton's
               ``convert_from`` when it converts the files' joint layout, so the raw level is shared).
The source files enter the key as ``dataset.cache_key`` says: ``stat`` (every file's size and
modification time), ``content`` (every file's SHA-256: slow, but blind to nothing) or ``manifest``
(folder times and per-folder digests kept in a manifest, :mod:`gaitgraph.data.manifest`; for trees of
millions of files, ``dataset.cache_refresh=true`` re-scans them all).

Each file holds one contiguous ``frames`` array, ``offsets`` and one dataset per metadata column, every
one with an HDF5 fletcher32 checksum, so damaged bytes are found on load: the file is named in a warning
and rebuilt. Both levels are written as streams (the reader's chunks into the raw file, then the raw file
in slices through preprocessing into the processed one), so building needs little more memory than the
largest chunk. Files are written to a temporary name and atomically renamed; a file lock makes concurrent
sweep workers build once while the others wait.

CLI: ``python -m gaitgraph.data.cache build|info dataset=...`` (any train.yaml override works).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock
from hydra.utils import instantiate
from omegaconf import DictConfig

from gaitgraph.cli import USAGE_EXIT, entry
from gaitgraph.data import manifest
from gaitgraph.data.duplicates import watch_duplicates
from gaitgraph.data.poseset import META_COLUMNS, PoseSet
from gaitgraph.data.preprocess import convert_layout, normalize
from gaitgraph.data.readers import FolderReader, plain_name
from gaitgraph.errors import ConfigError
from gaitgraph.progress import progress
from gaitgraph.skeletons import Skeleton
from gaitgraph.usage import wants_help
from gaitgraph.utils import atomic_write, build, check_writable, plain, remove_stale_temps

log = logging.getLogger(__name__)

#: Bump when the file layout or a reader's semantics change, so old caches are never read.
CACHE_VERSION = 2
CACHE_KEYS = ("stat", "content", "manifest")
#: Reader options that change how fast the source is read or how it is named, not what is read: left out of the key.
UNKEYED_READER_OPTIONS = ("workers", "label", "hint")
#: Frames per HDF5 chunk (~1.7 MB of COCO-17 float32); each chunk carries its own checksum.
FRAME_CHUNK = 8192
#: Frames per slice when the processed level is built from the raw one (bounds memory while building).
PROCESS_FRAMES = 1 << 20


class CacheCorruptError(RuntimeError):
    """A cache file exists but cannot be trusted (checksum, truncation, missing datasets, wrong shapes)."""


def fingerprint(parts: dict[str, Any]) -> str:
    """A stable hash of JSON-serialisable parts (configs, file stats, other fingerprints)."""
    blob = json.dumps({"version": CACHE_VERSION, **parts}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def files_signature(files: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every source file: a change to any of them changes the key."""
    sig = []
    for f in sorted(Path(p) for p in files):
        st = f.stat()
        sig.append((str(f.resolve()), st.st_size, st.st_mtime_ns))
    return sig


def content_signature(files: list[Path]) -> list[tuple[str, str]]:
    """(path, SHA-256 of the bytes) of every source file: changes that keep size and time show too."""
    sig = []
    for f in progress(sorted(Path(p) for p in files), desc="Hashing source files", unit="file"):
        digest = hashlib.sha256()
        with open(f, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        sig.append((str(f.resolve()), digest.hexdigest()))
    return sig


def write_poses(path: Path, chunks: Iterable[PoseSet], attrs: dict[str, Any] | None = None) -> None:
    """Stream PoseSet ``chunks`` into one cache file at ``path``, atomically (temp file, then rename)."""
    atomic_write(path, lambda tmp: _write(tmp, chunks, attrs or {}))


def save_poseset(poses: PoseSet, path: Path, attrs: dict[str, Any] | None = None) -> None:
    """Write ``poses`` to ``path`` atomically (temp file in the same directory, then rename)."""
    write_poses(path, [poses], attrs)


def _write(tmp: Path, chunks: Iterable[PoseSet], attrs: dict[str, Any]) -> None:
    with h5py.File(tmp, "w") as f:
        frames, lengths, metas = None, [], []
        for poses in chunks:
            if frames is None:
                frames = _frames_dataset(f, poses.num_joints)
            start = len(frames)
            frames.resize(start + len(poses.frames), axis=0)
            frames[start:] = poses.frames
            lengths.append(poses.lengths)
            metas.append(poses.meta)
        if frames is None:
            frames = _frames_dataset(f, 0)
        lengths = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        f.create_dataset("offsets", data=offsets, **_checked(len(offsets)))
        meta = pd.concat(metas, ignore_index=True) if metas else pd.DataFrame(columns=list(META_COLUMNS))
        group = f.create_group("meta")
        for col in META_COLUMNS:
            group.create_dataset(col, data=_column(meta[col]), **_checked(len(meta)))
        for key, value in attrs.items():
            f.attrs[key] = value
        f.attrs["cache_version"] = CACHE_VERSION
        f.attrs["n_sequences"] = len(meta)
        f.attrs["n_frames"] = len(frames)


def _frames_dataset(f: h5py.File, joints: int) -> h5py.Dataset:
    return f.create_dataset(
        "frames",
        shape=(0, joints, 3),
        maxshape=(None, joints, 3),
        dtype=np.float32,
        chunks=(FRAME_CHUNK, max(joints, 1), 3),
        fletcher32=True,
    )


def _checked(n: int) -> dict[str, Any]:
    """Chunked storage with a checksum (HDF5 filters need chunks; a dataset of 0 rows gets one of 1)."""
    return {"chunks": (min(max(n, 1), 1 << 16),), "maxshape": (None,), "fletcher32": True}


def _column(values: pd.Series) -> np.ndarray:
    """Integers as int64; text as fixed-length UTF-8 bytes (variable-length strings escape the checksum)."""
    if values.dtype.kind in "iu":
        return values.to_numpy(np.int64)
    encoded = np.char.encode(values.to_numpy(str), "utf-8")
    return encoded.astype(f"S{max(1, encoded.dtype.itemsize)}")


def load_poseset(path: Path) -> PoseSet:
    """Read a cache file written by :func:`write_poses`; :class:`CacheCorruptError` if it is damaged."""
    with _open(path) as f:
        head = _header(f, path)
        frames = _read(f["frames"], path)
    return _checked_poseset(path, frames, head)


def iter_poseset(path: Path, max_frames: int = PROCESS_FRAMES) -> Iterator[PoseSet]:
    """A cache file as consecutive PoseSets of whole sequences, about ``max_frames`` frames each."""
    with _open(path) as f:
        head = _header(f, path)
        offsets = head["offsets"]
        starts = np.searchsorted(offsets, np.arange(0, offsets[-1], max(1, max_frames)), side="right") - 1
        cuts = np.unique(np.append(starts, len(offsets) - 1))
        for a, b in zip(cuts[:-1], cuts[1:]):
            frames = _read(f["frames"], path, offsets[a], offsets[b])
            part = {"offsets": offsets[a : b + 1] - offsets[a], "meta": head["meta"].iloc[a:b]}
            yield _checked_poseset(path, frames, {**part, "n": (b - a, len(frames))})


@contextmanager
def _open(path: Path) -> Iterator[h5py.File]:
    """``h5py.File(path, "r")`` whose failures (not HDF5, truncated) become :class:`CacheCorruptError`."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise CacheCorruptError(f"{path}: unreadable cache file ({err})") from err
    with f:
        yield f


def _read(ds: h5py.Dataset, path: Path, start: int = 0, stop: int | None = None) -> np.ndarray:
    try:
        return ds[start:stop]
    except (OSError, ValueError) as err:  # a fletcher32 mismatch surfaces as OSError here
        raise CacheCorruptError(f"{path}: unreadable cache file ({err})") from err


def _header(f: h5py.File, path: Path) -> dict[str, Any]:
    """Version, offsets, metadata and the header counts of an open cache file."""
    if f.attrs.get("cache_version") != CACHE_VERSION:
        raise CacheCorruptError(f"{path}: cache version {f.attrs.get('cache_version')}, expected {CACHE_VERSION}")
    try:
        meta = {}
        for col in META_COLUMNS:
            values = _read(f["meta"][col], path)
            meta[col] = _text(values) if values.dtype.kind == "S" else values
        offsets = _read(f["offsets"], path)
        stored = f["frames"].shape[0]
        n = (int(f.attrs["n_sequences"]), int(f.attrs["n_frames"]))
    except KeyError as err:
        raise CacheCorruptError(f"{path}: unreadable cache file (missing {err})") from err
    if len(offsets) - 1 != n[0] or stored != n[1]:
        raise CacheCorruptError(f"{path}: holds {len(offsets) - 1} sequences / {stored} frames, header says {n}")
    return {"offsets": offsets, "meta": pd.DataFrame(meta), "n": n}


def _text(values: np.ndarray) -> np.ndarray:
    """UTF-8 bytes as text; the plain cast (ASCII, the usual case) is twice as fast as a UTF-8 decode."""
    try:
        return values.astype(str)
    except UnicodeDecodeError:
        return np.char.decode(values, "utf-8")


def _checked_poseset(path: Path, frames: np.ndarray, head: dict[str, Any]) -> PoseSet:
    if len(frames) != head["n"][1]:
        raise CacheCorruptError(f"{path}: holds {len(frames)} frames, header says {head['n'][1]}")
    if not np.isfinite(frames).all():
        raise CacheCorruptError(f"{path}: frames hold values that are not finite")
    try:
        return PoseSet(frames, head["offsets"], head["meta"])
    except ValueError as err:
        raise CacheCorruptError(f"{path}: inconsistent cache file ({err})") from err


def ensure(path: Path, build: Any, attrs: dict[str, Any], rebuild: bool = False) -> None:
    """Make sure a valid cache file is at ``path``: check it, else stream ``build()`` into it, once.

    Several processes asking at the same time wait for the one that builds. A damaged file is named in a
    warning and rebuilt.
    """
    path = Path(path)
    check_writable(path.parent, "paths.cache_dir")  # the lock file and the build both need it
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        remove_stale_temps(path.parent, name=path.name)  # a killed build's: under the lock, no build of it runs
        if path.exists() and not rebuild:
            try:
                for _ in iter_poseset(path):
                    pass
                return
            except CacheCorruptError as err:
                log.warning("%s; rebuilding it", err)
        start = time.perf_counter()
        write_poses(path, build(), attrs)
        log.info("cached %s (%.1f s)", path, time.perf_counter() - start)


def _proc_parts(dataset_cfg: DictConfig, skeleton: Skeleton | None) -> dict[str, Any]:
    """What the processed level adds to the raw one; no conversion adds nothing, so older keys stay valid."""
    parts = {"preprocess": plain(dataset_cfg.preprocess)}
    if skeleton is not None and skeleton.convert_from is not None:
        parts["convert"] = [skeleton.convert_from, skeleton.layout]
    return parts


def _reader_key(dataset_cfg: DictConfig) -> dict[str, Any]:
    return {k: v for k, v in plain(dataset_cfg.reader).items() if k not in UNKEYED_READER_OPTIONS}


def source_signature(dataset_cfg: DictConfig, reader: Any, cache_dir: Path) -> Any:
    """What the raw key knows of the source files, by ``dataset.cache_key`` (see the module doc)."""
    mode = dataset_cfg.get("cache_key", "stat")
    if mode == "stat":
        return files_signature(reader.files())
    if mode == "content":
        return content_signature(reader.files())
    if mode != "manifest":
        raise ConfigError("dataset.cache_key", mode, f"one of {', '.join(CACHE_KEYS)}")
    if not isinstance(reader, FolderReader):
        raise ConfigError("dataset.cache_key", mode, "stat or content: this dataset is not read from unit folders")
    where = cache_dir / f"{dataset_cfg.name}-manifest-{fingerprint(_reader_key(dataset_cfg))[:16]}.json"
    units = manifest.signature(reader, where, refresh=bool(dataset_cfg.get("cache_refresh", False)))
    return {"units": units, "extra": files_signature(reader.extra_files())}


def cache_paths(
    dataset_cfg: DictConfig, cache_dir: str | Path, skeleton: Skeleton | None = None
) -> tuple[Path, Path, Any]:
    """The raw and processed cache files of a dataset config read with ``skeleton``, and its reader."""
    name = plain_name(dataset_cfg.name, "dataset.name")
    cache_dir = Path(cache_dir)
    reader = instantiate(dataset_cfg.reader)
    files = source_signature(dataset_cfg, reader, cache_dir)
    raw_key = fingerprint({"reader": _reader_key(dataset_cfg), "files": files})
    proc_key = fingerprint({"raw": raw_key, **_proc_parts(dataset_cfg, skeleton)})
    return cache_dir / f"{name}-raw-{raw_key[:16]}.h5", cache_dir / f"{name}-{proc_key[:16]}.h5", reader


def load_poses(dataset_cfg: DictConfig, skeleton: Skeleton, cache_dir: str | Path, rebuild: bool = False) -> PoseSet:
    """The dataset's preprocessed PoseSet, from the cache when it is there (built otherwise)."""
    if dataset_cfg.layout != skeleton.file_layout:
        reads = f"reads '{skeleton.file_layout}' files" if skeleton.convert_from else f"has layout '{skeleton.layout}'"
        raise ConfigError(
            "keypoints",
            skeleton.layout,
            f"a layout for this dataset: dataset '{dataset_cfg.name}' "
            f"holds {dataset_cfg.layout} poses but keypoints {reads}; choose a matching keypoints= option",
        )
    raw_path, proc_path, reader = cache_paths(dataset_cfg, cache_dir, skeleton)
    stale = rebuild
    if proc_path.exists() and not rebuild:
        try:
            return load_poseset(proc_path)
        except CacheCorruptError as err:
            log.warning("%s; rebuilding it", err)
            stale = True
    raw_attrs = {"dataset": dataset_cfg.name, "reader": json.dumps(_reader_key(dataset_cfg))}
    proc_attrs = {**raw_attrs, **{k: json.dumps(v) for k, v in _proc_parts(dataset_cfg, skeleton).items()}}
    method = dataset_cfg.preprocess.normalize

    def processed() -> Iterator[PoseSet]:
        # A reader needs only files() and read(); PoseReader subclasses also stream chunks().
        chunks = reader.chunks if hasattr(reader, "chunks") else lambda: [reader.read()]
        label = getattr(reader, "label", dataset_cfg.name)
        ensure(raw_path, lambda: watch_duplicates(chunks(), label), raw_attrs, rebuild)
        for raw in iter_poseset(raw_path):
            yield normalize(convert_layout(raw, skeleton), skeleton, method)

    ensure(proc_path, processed, proc_attrs, stale)
    return load_poseset(proc_path)


def describe(path: Path) -> dict[str, Any]:
    """What a cache file holds: counts, subjects, conditions, views, attributes."""
    poses = load_poseset(path)
    with h5py.File(path, "r") as f:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    meta = poses.meta
    return {
        "path": str(path),
        "size_mb": round(Path(path).stat().st_size / 2**20, 2),
        "sequences": len(poses),
        "frames": int(len(poses.frames)),
        "joints": poses.num_joints,
        "subjects": int(meta["subject"].nunique()),
        "conditions": sorted(meta["condition"].unique().tolist()),
        "views": sorted(meta["view"].unique().tolist()),
        "frames_per_sequence": {
            "min": int(meta["n_frames"].min()),
            "median": float(meta["n_frames"].median()),
            "max": int(meta["n_frames"].max()),
        },
        "attrs": attrs,
    }


def _cli(cfg: DictConfig, action: str) -> None:
    from rich.console import Console
    from rich.table import Table

    skeleton = build(cfg.keypoints)
    if action == "build":
        load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir, rebuild=bool(cfg.get("rebuild", False)))
    _, proc_path, _ = cache_paths(cfg.dataset, cfg.paths.cache_dir, skeleton)
    if not proc_path.exists():
        raise ConfigError(
            "dataset",
            cfg.dataset.name,
            f"a dataset with a cache; none yet at {proc_path}: run "
            "`python -m gaitgraph.data.cache build dataset=...` first",
        )
    info = describe(proc_path)
    table = Table(title=f"cache: {cfg.dataset.name}")
    table.add_column("key")
    table.add_column("value")
    for key, value in info.items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    Console().print(table)


def main() -> None:
    """Entry point: ``python -m gaitgraph.data.cache build|info [overrides...]``."""
    actions = ("build", "info")
    line = f"usage: python -m gaitgraph.data.cache {{{'|'.join(actions)}}} [dataset=... overrides]"
    if wants_help(sys.argv[1:2]):  # asked for, so on stdout with status 0; `build --help` lists the config groups
        print(f"{line}\n  build --help   the config groups and keys")
        return
    if len(sys.argv) < 2 or sys.argv[1] not in actions:
        print(line, file=sys.stderr)
        sys.exit(USAGE_EXIT)
    action = sys.argv.pop(1)
    if action == "info":
        # Reading a cache writes nothing: no run folder (Hydra makes hydra.run.dir, here the current one, which
        # exists), no .hydra/ copy, no log file, and no train guard (it checks a run folder there is none of).
        sys.argv[1:1] = [
            "hydra.run.dir=.",
            "hydra.output_subdir=null",
            "hydra/job_logging=stdout",
            "~hydra.callbacks.guard",
            "~hydra.callbacks.output",
        ]

    @entry("train")
    def run(cfg: DictConfig) -> None:
        _cli(cfg, action)

    run()


if __name__ == "__main__":
    main()
