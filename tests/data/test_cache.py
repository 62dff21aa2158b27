"""The HDF5 pose cache: real h5py files, fingerprints, corruption, concurrent builders."""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.data import cache
from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton

from ..conftest import compose_train, run_console

BUILD_LOG = "builds.log"


def _poses(n_seq: int = 3, joints: int = 17) -> PoseSet:
    rng = np.random.default_rng(0)
    seqs = [rng.normal(size=(5 + i, joints, 3)).astype(np.float32) for i in range(n_seq)]
    meta = [dict(subject=i, condition="nm", seq=1, view=f"{18 * i:03d}", source=f"s{i}") for i in range(n_seq)]
    return PoseSet.from_sequences(seqs, meta)


class CountingReader:
    """A reader over one .npy file that logs every parse, so tests can count them."""

    def __init__(self, root: str, delay: float = 0.0) -> None:
        self.root = Path(root)
        self.delay = delay

    def files(self) -> list[Path]:
        return [self.root / "poses.npy"]

    def read(self) -> PoseSet:
        with open(self.root / BUILD_LOG, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(self.delay)
        frames = np.load(self.root / "poses.npy")
        meta = [dict(subject=i, condition="nm", seq=0, view="000", source="poses.npy") for i in range(len(frames))]
        return PoseSet.from_sequences(list(frames), meta)


def _dataset_cfg(root: Path, normalize: str = "none", delay: float = 0.0):
    return OmegaConf.create(
        {
            "name": "counting",
            "layout": "coco17",
            "reader": {"_target_": f"{__name__}.CountingReader", "root": str(root), "delay": delay},
            "preprocess": {"normalize": normalize},
        }
    )


def _skeleton(option: str = "coco17") -> Skeleton:
    return instantiate(OmegaConf.load(CONF_DIR / "keypoints" / f"{option}.yaml"))


@pytest.fixture
def skeleton() -> Skeleton:
    return _skeleton()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    np.save(tmp_path / "poses.npy", np.random.default_rng(1).normal(size=(4, 6, 17, 3)).astype(np.float32))
    return tmp_path


def _builds(root: Path) -> int:
    log = root / BUILD_LOG
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_roundtrip_is_exact(tmp_path: Path):
    poses = _poses()
    cache.save_poseset(poses, tmp_path / "c.h5")
    back = cache.load_poseset(tmp_path / "c.h5")
    np.testing.assert_array_equal(back.frames, poses.frames)
    np.testing.assert_array_equal(back.offsets, poses.offsets)
    pd.testing.assert_frame_equal(back.meta, poses.meta)
    with h5py.File(tmp_path / "c.h5") as f:  # one contiguous array, not a dataset per sequence
        assert f["frames"].shape == poses.frames.shape
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_second_load_reads_cache_not_source(source: Path, skeleton: Skeleton):
    cfg = _dataset_cfg(source)
    first = cache.load_poses(cfg, skeleton, source / "cache")
    second = cache.load_poses(cfg, skeleton, source / "cache")
    assert _builds(source) == 1
    np.testing.assert_array_equal(first.frames, second.frames)


def test_source_change_and_preprocessing_change_rebuild(source: Path, skeleton: Skeleton):
    cache.load_poses(_dataset_cfg(source), skeleton, source / "cache")
    cache.load_poses(_dataset_cfg(source, normalize="center_scale"), skeleton, source / "cache")
    assert _builds(source) == 1, "a preprocessing change must reuse the raw cache, not re-parse"
    time.sleep(0.01)
    np.save(source / "poses.npy", np.zeros((2, 6, 17, 3), np.float32))
    again = cache.load_poses(_dataset_cfg(source), skeleton, source / "cache")
    assert _builds(source) == 2
    assert len(again) == 2 and not again.frames.any(), "stale cache was read after the source changed"


def test_corrupt_cache_is_reported_and_rebuilt(source: Path, skeleton: Skeleton, caplog):
    cfg = _dataset_cfg(source)
    cache.load_poses(cfg, skeleton, source / "cache")
    _, proc, _ = cache.cache_paths(cfg, source / "cache")
    data = proc.read_bytes()
    proc.write_bytes(data[: len(data) // 3])  # truncated
    with caplog.at_level("WARNING"):
        poses = cache.load_poses(cfg, skeleton, source / "cache")
    assert "rebuilding" in caplog.text and str(proc) in caplog.text
    assert len(poses) == 4
    with pytest.raises(cache.CacheCorruptError, match="unreadable"):
        (source / "junk.h5").write_bytes(b"not hdf5")
        cache.load_poseset(source / "junk.h5")


def test_layout_mismatch_is_a_clear_error(source: Path):
    openpose = _skeleton("openpose")
    with pytest.raises(ValueError, match="keypoints"):
        cache.load_poses(_dataset_cfg(source), openpose, source / "cache")


def _worker(root: str, queue) -> None:
    poses = cache.load_poses(_dataset_cfg(Path(root), delay=1.0), _skeleton(), Path(root) / "cache")
    queue.put(len(poses))


def test_concurrent_workers_build_once(source: Path):
    ctx = mp.get_context("fork")  # processes of their own, without a new interpreter's imports each
    queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(source), queue)) for _ in range(3)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=60) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert results == [4, 4, 4]
    assert _builds(source) == 1, "several workers parsed the source"


def test_chunks_stream_into_one_file_and_read_back_in_slices(tmp_path: Path):
    parts = [_poses(3), _poses(2), _poses(4)]
    cache.write_poses(tmp_path / "s.h5", iter(parts))
    whole = PoseSet.concat(parts)
    back = cache.load_poseset(tmp_path / "s.h5")
    np.testing.assert_array_equal(back.frames, whole.frames)
    np.testing.assert_array_equal(back.offsets, whole.offsets)
    pd.testing.assert_frame_equal(back.meta, whole.meta)
    slices = list(cache.iter_poseset(tmp_path / "s.h5", max_frames=12))
    assert len(slices) > 1 and all(s.offsets[-1] == len(s.frames) for s in slices)
    np.testing.assert_array_equal(PoseSet.concat(slices).frames, whole.frames)


@pytest.mark.parametrize("level", ["processed", "raw"])
def test_garbage_in_the_frames_is_named_and_rebuilt(source: Path, skeleton: Skeleton, caplog, level: str):
    cfg = _dataset_cfg(source)
    fresh = cache.load_poses(cfg, skeleton, source / "cache")
    raw, proc, _ = cache.cache_paths(cfg, source / "cache")
    target = proc if level == "processed" else raw
    with h5py.File(target, "r") as f:
        assert f["frames"].fletcher32
        offset = f["frames"].id.get_chunk_info(0).byte_offset
    with open(target, "r+b") as f:  # 4 KB of garbage inside a valid file: its HDF5 structure stays intact
        f.seek(offset)
        f.write(np.random.default_rng(0).bytes(4096))
    if level == "raw":  # the raw level is read when a new processed level is built from it
        cfg = _dataset_cfg(source, normalize="center_scale")
        fresh = cache.load_poses(cfg, skeleton, source / "fresh")
    with caplog.at_level("WARNING"):
        again = cache.load_poses(cfg, skeleton, source / "cache")
    assert f"{target}: unreadable cache file" in caplog.text and "rebuilding it" in caplog.text
    np.testing.assert_array_equal(again.frames, fresh.frames)
    pd.testing.assert_frame_equal(again.meta, fresh.meta)
    assert _builds(source) == (1 if level == "processed" else 3), "only the damaged level is rebuilt"


def test_content_key_sees_what_size_and_time_miss(source: Path):
    stat_cfg = _dataset_cfg(source)
    content_cfg = OmegaConf.merge(stat_cfg, {"cache_key": "content"})
    before = {m: cache.cache_paths(c, source / "cache")[0] for m, c in (("stat", stat_cfg), ("content", content_cfg))}
    path = source / "poses.npy"
    st = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # same size
    path.write_bytes(bytes(data))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same modification time
    assert cache.cache_paths(stat_cfg, source / "cache")[0] == before["stat"]
    assert cache.cache_paths(content_cfg, source / "cache")[0] != before["content"]


def test_dataset_name_must_be_a_plain_name(tmp_outputs: list[str]):
    cfg = compose_train(["dataset.name=../x", *tmp_outputs])
    with pytest.raises(ConfigError, match=r"^dataset\.name='\.\./x': expected a plain name"):
        cache.cache_paths(cfg.dataset, cfg.paths.cache_dir)


def test_unknown_or_unfit_cache_key(source: Path):
    with pytest.raises(ConfigError, match=r"^dataset\.cache_key='mtime'"):
        cache.cache_paths(OmegaConf.merge(_dataset_cfg(source), {"cache_key": "mtime"}), source / "cache")
    with pytest.raises(ConfigError, match=r"^dataset\.cache_key='manifest': expected stat or content"):
        cache.cache_paths(OmegaConf.merge(_dataset_cfg(source), {"cache_key": "manifest"}), source / "cache")


def test_cache_info_writes_nothing(tmp_path: Path, shared_cache: Path):
    """``gaitgraph-cache info`` reads a cache and prints it: no run folder, no .hydra/, no log file anywhere. The
    console script in a new process: its smoke test."""
    cfg, skeleton = compose_train([]), _skeleton()
    cache.load_poses(cfg.dataset, skeleton, shared_cache)  # the session's, built here unless a test already did
    (tmp_path / "cache").mkdir()
    for built in cache.cache_paths(cfg.dataset, shared_cache, skeleton)[:2]:
        shutil.copy2(built, tmp_path / "cache")
    work, before = tmp_path / "work", sorted(tmp_path.rglob("*"))
    work.mkdir()
    result = run_console(
        "gaitgraph-cache",
        ["info", f"paths.cache_dir={tmp_path / 'cache'}", f"paths.output_root={tmp_path / 'o'}"],
        work,
    )
    assert result.returncode == 0, result.stderr
    assert "cache: psymo10" in result.stdout and "sequences" in result.stdout
    assert sorted(tmp_path.rglob("*")) == sorted([*before, work]), "info wrote files"
