"""PsyMoReader: the real PsyMo-10 subset and one test per validation case."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.errors import DatasetFormatError


def reader(root, **kw) -> PsyMoReader:
    return PsyMoReader(root, min_frames=kw.pop("min_frames", 1), short_policy=kw.pop("short_policy", "drop"))


def test_real_psymo10(psymo10_dir, caplog):
    r = PsyMoReader(psymo10_dir, min_frames=1)
    with caplog.at_level(logging.INFO):
        poses = r.read()
    meta = poses.meta
    assert len(poses) == 480 and len(r.files()) == 480
    assert sorted(meta.subject.unique()) == list(range(10))
    assert sorted(meta.view.unique()) == ["00_0", "00_1", "45_0", "45_1", "90_0", "90_1"]
    assert meta.condition.value_counts().to_dict() == {
        "nm": 120,
        "bg": 60,
        "cl": 60,
        "ph": 60,
        "txt": 60,
        "wsf": 60,
        "wss": 60,
    }
    assert set(meta.loc[meta.condition == "nm", "seq"]) == {0, 1}
    assert poses.frames.shape == (31172, 17, 3)  # distinct frames over all files (data/psymo10/README.md §3)
    shortest = meta.loc[meta.n_frames.idxmin()]
    assert shortest.source == "skeletons/6/006_90_1_0_wss.json" and shortest.n_frames == 14
    assert meta.n_frames.max() == 68
    assert poses.frames[..., 2].max() <= 1.0 and poses.frames[..., 2].min() > 0
    assert r.stats.multi_person_frames == 2901 and r.stats.multi_person_sequences == 84
    assert 0 < r.stats.not_highest_score < 50
    assert sum("clipped" in m for m in caplog.messages) == 1


def test_real_psymo10_short_drop(psymo10_dir, caplog):
    with caplog.at_level(logging.WARNING):
        poses = PsyMoReader(psymo10_dir, min_frames=30).read()
    assert len(poses) == 477  # 14, 25 and 26 frames (data/psymo10/README.md §3)
    drops = [m for m in caplog.messages if "dropped" in m]
    assert len(drops) == 1 and "006_90_1_0_wss" in drops[0] and "dropped 3 of 480" in drops[0]


def test_meta_order_and_gaps(write_walk, psymo_root, det):
    # frames 10 and 2 would swap under string sort; 5-7 missing stays missing
    frames = [0, 1, 2, 3, 4, 8, 9, 10, 11]
    write_walk("003_45_1_0_txt.json", [det(k, x=100.0 * k) for k in frames])
    poses = reader(psymo_root).read()
    m = poses.meta.iloc[0]
    assert (m.subject, m.condition, m.seq, m.view, m.n_frames) == (3, "txt", 0, "45_1", 9)
    assert m.source == "skeletons/3/003_45_1_0_txt.json"
    np.testing.assert_allclose(poses.frames[:, 0, 0], [100.0 * k for k in frames])


def test_several_people_follow_track(write_walk, psymo_root, det, caplog):
    walker = [det(k, x=500.0 + 20 * k) for k in range(12)]
    # a small static bystander whose score beats the walker in frames 5 and 6
    bystander = [det(k, x=1500.0, h=150.0, score=3.5 if k in (5, 6) else 1.5) for k in range(3, 9)]
    dets = sorted(walker + bystander, key=lambda d: int(d["image_id"][:-4]))
    write_walk("003_00_0_0_bg.json", dets)
    r = reader(psymo_root)
    with caplog.at_level(logging.INFO):
        poses = r.read()
    np.testing.assert_allclose(poses.frames[:, 0, 0], [500.0 + 20 * k for k in range(12)])
    assert r.stats.multi_person_frames == 6 and r.stats.not_highest_score == 2
    assert any("6 frames in 1 sequences held several people" in m for m in caplog.messages)


def test_confidence_above_one_clipped_with_one_warning(write_walk, psymo_root, det, caplog):
    write_walk("001_00_0_0_nm.json", [det(k, conf=1.07) for k in range(5)])
    write_walk("001_00_0_1_nm.json", [det(k, conf=1.01) for k in range(5)])
    r = reader(psymo_root)
    with caplog.at_level(logging.WARNING):
        poses = r.read()
    assert poses.frames[..., 2].max() == 1.0
    assert r.stats.clipped_confidences == 2 * 5 * 17
    assert [m for m in caplog.messages if "clipped" in m] == ["PsyMo: clipped 170 keypoint confidences above 1 to 1"]


def test_short_sequence_error(write_walk, psymo_root, det):
    write_walk("002_90_0_0_wss.json", [det(k) for k in range(4)])
    with pytest.raises(DatasetFormatError, match=r"002_90_0_0_wss.json.*at least min_frames=5 frames.*4 frames"):
        reader(psymo_root, min_frames=5, short_policy="error").read()


def test_short_sequence_drop(write_walk, psymo_root, det, caplog):
    write_walk("002_90_0_0_wss.json", [det(k) for k in range(4)])
    write_walk("002_90_0_0_wsf.json", [det(k) for k in range(8)])
    with caplog.at_level(logging.WARNING):
        poses = reader(psymo_root, min_frames=5).read()
    assert list(poses.meta.condition) == ["wsf"]
    assert sum("dropped 1 of 2" in m and "002_90_0_0_wss" in m for m in caplog.messages) == 1


def test_missing_root(tmp_path):
    with pytest.raises(DatasetFormatError, match=r"nope: dataset root.*no such folder\n  hint: PsyMo-10 ships"):
        reader(tmp_path / "nope").files()


def test_root_without_files(psymo_root):
    (psymo_root / "skeletons").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match=r"dataset root.*found none"):
        reader(psymo_root).read()


@pytest.mark.parametrize(
    ("content", "location", "found"),
    [
        ("", "file", "an empty file"),
        ("   \n", "file", "an empty file"),
        ('[{"image_id": "0.jpg", "keypoints": [1.0, 2', "line 1 column", "truncated"),
        ("[{'image_id': '0.jpg'}]", "line 1 column 3", "Expecting property name"),
        (json.dumps({"image_id": "0.jpg"}), "top level", "found dict"),
        ("[]", "top level", "an empty list"),
        (json.dumps([[1, 2]]), r"\[0\]", "found list"),
    ],
    ids=["empty", "blank", "truncated", "invalid", "not-a-list", "empty-list", "not-a-dict"],
)
def test_file_level_errors(write_walk, psymo_root, content, location, found):
    path = write_walk("004_00_1_0_ph.json", content)
    with pytest.raises(DatasetFormatError, match=rf"{path}: {location}.*{found}"):
        reader(psymo_root).read()


def _with(k: int, **changes) -> tuple[int, dict]:
    return k, changes


@pytest.mark.parametrize(
    ("dets", "location", "found"),
    [
        (_with(2, score=None), r"\[2\]", "no score"),
        (_with(3, keypoints=None, box=None), r"\[3\]", "no keypoints, box"),
        (_with(1, image_id="frame1.jpg"), r"\[1\]\.image_id", "'frame1.jpg'"),
        (_with(1, image_id=7), r"\[1\]\.image_id", "7"),
        (_with(4, keypoints=[1.0] * 50), r"\[4\]\.keypoints", "50 values"),
        (_with(4, keypoints="none"), r"\[4\]\.keypoints", "str"),
        (_with(2, keypoints=[1.0] * 10 + ["x"] + [1.0] * 40), r"\[2\]\.keypoints\[10\]", "'x'"),
        (_with(2, keypoints=[1.0] * 10 + [None] + [1.0] * 40), r"\[2\]\.keypoints\[10\]", "None"),
        (
            _with(5, keypoints=[1.0] * 7 + [float("nan")] + [1.0] * 43),
            r"\[5\]\.keypoints\[7\] \(joint 2 y\)",
            "a finite number within \\+-100000, found nan",
        ),
        (_with(5, keypoints=[1.0] * 50 + [float("inf")]), r"\[5\]\.keypoints\[50\] \(joint 16 confidence\)", "inf"),
        (_with(0, box=[1, 2, 3]), r"\[0\]\.box", "3 values"),
        (_with(0, score="high"), r"\[0\]\.score", "'high'"),
        (_with(0, keypoints=[1.0] * 50 + [-0.5]), "frame 0 joint 16 confidence", "-0.5"),
    ],
    ids=[
        "no-score",
        "two-keys",
        "bad-image-id",
        "int-image-id",
        "50-values",
        "keypoints-str",
        "string-value",
        "null-value",
        "nan",
        "inf",
        "short-box",
        "score-str",
        "negative-conf",
    ],
)
def test_detection_errors(write_walk, psymo_root, det, dets, location, found):
    k, changes = dets
    content = [det(i) for i in range(6)]
    for key, value in changes.items():
        if value is None:
            del content[k][key]
        else:
            content[k][key] = value
    path = write_walk("005_45_0_0_cl.json", content)
    with pytest.raises(DatasetFormatError, match=rf"{path}: {location}: expected .*{found}"):
        reader(psymo_root).read()


def test_duplicate_frame_out_of_order(write_walk, psymo_root, det):
    dets = [det(k) for k in (0, 1, 2, 3)] + [det(1)]
    path = write_walk("005_45_0_0_cl.json", dets)
    with pytest.raises(DatasetFormatError, match=rf'{path}: \[4\]\.image_id: .*"1\.jpg" again, first seen at \[1\]'):
        reader(psymo_root).read()


def test_frames_out_of_order_but_unique_are_sorted(write_walk, psymo_root, det):
    write_walk("005_45_0_0_cl.json", [det(k, x=10.0 * k) for k in (3, 1, 2, 0)])
    poses = reader(psymo_root).read()
    np.testing.assert_allclose(poses.frames[:, 0, 0], [0, 10, 20, 30])


@pytest.mark.parametrize(
    ("name", "folder", "match"),
    [
        ("005_45_0_cl.json", "5", r"file name: expected <IDPAD>.*found '005_45_0_cl.json'"),
        ("005_45_0_0_run.json", "5", r"file name variation: expected one of nm, bg.*found 'run'"),
        ("005_45_0_0_nm.json", "6", r"file name: expected the subject ID of its folder \(6\), found ID 005"),
    ],
    ids=["unparsable", "unknown-variation", "folder-mismatch"],
)
def test_file_name_errors(write_walk, psymo_root, name, folder, match):
    write_walk(name, folder=folder)
    with pytest.raises(DatasetFormatError, match=match):
        reader(psymo_root).read()


def test_bad_policy_rejected(psymo_root):
    with pytest.raises(ValueError, match="short_policy"):
        PsyMoReader(psymo_root, short_policy="pad")
