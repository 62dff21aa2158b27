"""The manifest cache key of folder datasets (OUMVLP-Pose): warm starts stat folders, not files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hydra.utils import instantiate

from gaitgraph.data import cache, manifest
from gaitgraph.data.oumvlp import OumvlpReader
from gaitgraph.data.synthetic import generate_oumvlp

from ..conftest import compose_train


@pytest.fixture
def oumvlp(tmp_path: Path):
    generate_oumvlp(tmp_path / "data" / "oumvlp", n_subjects=3, n_views=2, frames=6, seed=1)
    return compose_train(
        [
            "dataset=oumvlp",
            "keypoints=openpose",
            f"paths.data_dir={tmp_path / 'data'}",
            f"paths.cache_dir={tmp_path / 'cache'}",
            "dataset.reader.workers=0",
        ]
    )


@pytest.fixture
def scans(monkeypatch) -> list[str]:
    """Every unit folder the manifest scans file by file."""
    seen: list[str] = []
    original = manifest.scan_units

    def counting(reader, units):
        seen.extend(units)
        return original(reader, units)

    monkeypatch.setattr(manifest, "scan_units", counting)
    return seen


def _raw_path(cfg) -> Path:
    return cache.cache_paths(cfg.dataset, cfg.paths.cache_dir)[0]


def test_warm_start_reads_no_file_list(oumvlp, scans, monkeypatch):
    skeleton = instantiate(oumvlp.keypoints)
    first = cache.load_poses(oumvlp.dataset, skeleton, oumvlp.paths.cache_dir)
    assert sorted(scans) == ["openpose/00001", "openpose/00002", "openpose/00003"]
    written = list(Path(oumvlp.paths.cache_dir).glob("oumvlp-manifest-*.json"))
    assert len(written) == 1 and set(json.loads(written[0].read_text())["units"]) == set(scans)

    def no_files(self):
        raise AssertionError("a warm start listed every frame file")

    monkeypatch.setattr(OumvlpReader, "files", no_files)
    monkeypatch.setattr(OumvlpReader, "unit_files", no_files)
    again = cache.load_poses(oumvlp.dataset, skeleton, oumvlp.paths.cache_dir)
    assert len(scans) == 3 and len(again) == len(first)


def test_a_new_file_changes_the_key_and_rescans_only_its_subject(oumvlp, scans):
    before = _raw_path(oumvlp)
    folder = Path(oumvlp.dataset.reader.root) / "openpose" / "00002" / "000_00"
    (folder / "00002_000_00_000000000099_keypoints.json").write_text(json.dumps({"people": []}))
    after = _raw_path(oumvlp)
    assert after != before
    assert scans[3:] == ["openpose/00002"]


def test_refresh_finds_a_file_rewritten_in_place(oumvlp, scans):
    before = _raw_path(oumvlp)
    frame = sorted((Path(oumvlp.dataset.reader.root) / "openpose" / "00001" / "000_00").iterdir())[0]
    folder_time = os.stat(frame.parent).st_mtime_ns
    frame.write_text(json.dumps({"people": []}))  # same name: the folder's time does not move
    os.utime(frame.parent, ns=(folder_time, folder_time))
    assert _raw_path(oumvlp) == before, "documented limit: only cache_refresh or another key sees this"
    oumvlp.dataset.cache_refresh = True
    assert _raw_path(oumvlp) != before
    assert len(scans) == 6


def test_worker_count_is_not_part_of_the_key(oumvlp):
    one = _raw_path(oumvlp)
    oumvlp.dataset.reader.workers = 4
    assert _raw_path(oumvlp) == one


def test_folder_times_cover_the_folders_that_hold_files(tmp_path: Path):
    (tmp_path / "u" / "a").mkdir(parents=True)
    (tmp_path / "u" / "b").mkdir()
    times = manifest.folder_times(tmp_path / "u", depth=1)
    assert len(times) == 3
    os.utime(tmp_path / "u" / "b", ns=(1, 1))
    changed = manifest.folder_times(tmp_path / "u", depth=1)
    assert changed[:2] == times[:2] and changed[2] == 1
