"""HDF5 cache of parsed and preprocessed poses, so no run parses a CSV/JSON twice.

Two levels, each one HDF5 file keyed by a fingerprint:
  raw        = reader output, keyed by (source files' sizes + mtimes, reader config);
  processed  = preprocess(raw), keyed by (raw fingerprint, preprocessing config, and the skeleton's
               ``convert_from`` when it converts the files' joint layout, so the raw level is shared).
Each file holds one contiguous ``frames`` array, ``offsets`` and one dataset per metadata column.
Files are written to a temporary name and atomically renamed; a file lock makes concurrent sweep
workers build once while the others wait; an unreadable or inconsistent file is reported and rebuilt.

CLI: ``python -m gaitgraph.data.cache build|info dataset=...`` (any train.yaml override works).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Callable

import h5py
import numpy as np
import pandas as pd
from filelock import FileLock
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gaitgraph.cli import USAGE_EXIT, entry
from gaitgraph.data.poseset import META_COLUMNS, PoseSet
from gaitgraph.data.preprocess import convert_layout, normalize
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import atomic_write, build, plain

log = logging.getLogger(__name__)

#: Bump when the file layout or a reader's semantics change, so old caches are never read.
CACHE_VERSION = 1


class CacheCorruptError(RuntimeError):
    """A cache file exists but cannot be trusted (truncated, missing datasets, wrong shapes)."""


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


def save_poseset(poses: PoseSet, path: Path, attrs: dict[str, Any] | None = None) -> None:
    """Write ``poses`` to ``path`` atomically (temp file in the same directory, then rename)."""
    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("frames", data=poses.frames)
            f.create_dataset("offsets", data=poses.offsets)
            meta = f.create_group("meta")
            for col in META_COLUMNS:
                values = poses.meta[col].to_numpy()
                if poses.meta[col].dtype.kind in "iu":
                    meta.create_dataset(col, data=values.astype(np.int64))
                else:
                    meta.create_dataset(col, data=values.astype(object), dtype=h5py.string_dtype())
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
            f.attrs["cache_version"] = CACHE_VERSION
            f.attrs["n_sequences"] = len(poses)
            f.attrs["n_frames"] = len(poses.frames)

    atomic_write(path, write)


def load_poseset(path: Path) -> PoseSet:
    """Read a cache file written by :func:`save_poseset`; :class:`CacheCorruptError` if it is damaged."""
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("cache_version") != CACHE_VERSION:
                raise CacheCorruptError(f"{path}: cache version {f.attrs.get('cache_version')}, expected {CACHE_VERSION}")
            frames = f["frames"][:]
            offsets = f["offsets"][:]
            meta = {}
            for col in META_COLUMNS:
                ds = f["meta"][col]
                meta[col] = ds.asstr()[:] if h5py.check_string_dtype(ds.dtype) else ds[:]
            expected = (int(f.attrs["n_sequences"]), int(f.attrs["n_frames"]))
    except CacheCorruptError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise CacheCorruptError(f"{path}: unreadable cache file ({err})") from err
    if (len(offsets) - 1, len(frames)) != expected:
        raise CacheCorruptError(
            f"{path}: holds {len(offsets) - 1} sequences / {len(frames)} frames, header says {expected}"
        )
    try:
        return PoseSet(frames, offsets, pd.DataFrame(meta))
    except ValueError as err:
        raise CacheCorruptError(f"{path}: inconsistent cache file ({err})") from err


def cached(path: Path, build: Callable[[], PoseSet], attrs: dict[str, Any], rebuild: bool = False) -> PoseSet:
    """Load ``path`` or build it once, even when several processes ask at the same time."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        if path.exists() and not rebuild:
            try:
                return load_poseset(path)
            except CacheCorruptError as err:
                log.warning("%s; rebuilding it", err)
                path.unlink()
        start = time.perf_counter()
        poses = build()
        save_poseset(poses, path, attrs)
        log.info("cached %d sequences in %s (%.1f s)", len(poses), path, time.perf_counter() - start)
        return poses


def _proc_parts(dataset_cfg: DictConfig, skeleton: Skeleton | None) -> dict[str, Any]:
    """What the processed level adds to the raw one; no conversion adds nothing, so older keys stay valid."""
    parts = {"preprocess": plain(dataset_cfg.preprocess)}
    if skeleton is not None and skeleton.convert_from is not None:
        parts["convert"] = [skeleton.convert_from, skeleton.layout]
    return parts


def cache_paths(
    dataset_cfg: DictConfig, cache_dir: str | Path, skeleton: Skeleton | None = None
) -> tuple[Path, Path, Any]:
    """The raw and processed cache files of a dataset config read with ``skeleton``, and its reader."""
    reader = instantiate(dataset_cfg.reader)
    raw_key = fingerprint({"reader": plain(dataset_cfg.reader), "files": files_signature(reader.files())})
    proc_key = fingerprint({"raw": raw_key, **_proc_parts(dataset_cfg, skeleton)})
    name = dataset_cfg.name
    cache_dir = Path(cache_dir)
    return cache_dir / f"{name}-raw-{raw_key[:16]}.h5", cache_dir / f"{name}-{proc_key[:16]}.h5", reader


def load_poses(dataset_cfg: DictConfig, skeleton: Skeleton, cache_dir: str | Path, rebuild: bool = False) -> PoseSet:
    """The dataset's preprocessed PoseSet, from the cache when it is there (built otherwise)."""
    if dataset_cfg.layout != skeleton.file_layout:
        reads = f"reads '{skeleton.file_layout}' files" if skeleton.convert_from else f"has layout '{skeleton.layout}'"
        raise ConfigError("keypoints", skeleton.layout, f"a layout for this dataset: dataset '{dataset_cfg.name}' "
                          f"holds {dataset_cfg.layout} poses but keypoints {reads}; choose a matching keypoints= option")
    raw_path, proc_path, reader = cache_paths(dataset_cfg, cache_dir, skeleton)
    if proc_path.exists() and not rebuild:
        try:
            return load_poseset(proc_path)
        except CacheCorruptError as err:
            log.warning("%s; rebuilding it", err)
    raw_attrs = {"dataset": dataset_cfg.name, "reader": json.dumps(plain(dataset_cfg.reader))}
    proc_attrs = {**raw_attrs, **{k: json.dumps(v) for k, v in _proc_parts(dataset_cfg, skeleton).items()}}

    def build_processed() -> PoseSet:
        raw = cached(raw_path, reader.read, raw_attrs, rebuild)
        return normalize(convert_layout(raw, skeleton), skeleton, dataset_cfg.preprocess.normalize)

    return cached(proc_path, build_processed, proc_attrs, rebuild)


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
        raise ConfigError("dataset", cfg.dataset.name, f"a dataset with a cache; none yet at {proc_path}: run "
                          "`python -m gaitgraph.data.cache build dataset=...` first")
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
    if len(sys.argv) < 2 or sys.argv[1] not in actions:
        print(f"usage: python -m gaitgraph.data.cache {{{'|'.join(actions)}}} [dataset=... overrides]", file=sys.stderr)
        sys.exit(USAGE_EXIT)
    action = sys.argv.pop(1)

    @entry("train")
    def run(cfg: DictConfig) -> None:
        _cli(cfg, action)

    run()


if __name__ == "__main__":
    main()
