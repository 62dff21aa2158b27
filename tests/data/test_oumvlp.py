"""OumvlpReader: round trip from the synthetic generator and one test per validation case."""

from __future__ import annotations

import numpy as np
import pytest

from gaitgraph.data.oumvlp import OumvlpReader
from gaitgraph.data.synthetic import generate_oumvlp
from gaitgraph.errors import DatasetFormatError


@pytest.mark.parametrize("source", ["openpose", "alphapose"])
def test_synthetic_round_trip(tmp_path, source):
    root = generate_oumvlp(tmp_path / "oumvlp", n_subjects=3, n_views=4, frames=12, seed=2, multi_person_prob=0.3)
    reader = OumvlpReader(root, source=source)
    poses = reader.read()
    meta = poses.meta
    assert len(poses) == 3 * 4 * 2
    assert list(meta.view.unique()) == ["000", "015", "030", "045"]
    assert set(meta.seq) == {0, 1} and set(meta.condition) == {"nm"}
    assert meta.source[0] == f"{source}/00001/000_00"
    n_json = sum(1 for _ in (root / source).rglob("*.json"))
    assert poses.frames.shape[1:] == (18, 3) and 0 < len(poses.frames) <= n_json
    assert reader.stats.multi_person_frames > 0
    # bystanders are listed first but never chosen: every chosen pose is walker-sized
    heights = poses.frames[..., 1].max(axis=1) - np.where(poses.frames[..., 2] > 0, poses.frames[..., 1], np.inf).min(
        axis=1
    )
    assert heights.min() > 300
    split = reader.split_subjects()
    assert sorted(split["train"] + split["test"]) == [1, 2, 3] and not set(split["train"]) & set(split["test"])
    assert reader.files()[-1].name == "ID_list.csv"


def test_frame_name_forms_and_empty_frames(write_oumvlp_frame, write_id_list, oumvlp_root, person):
    write_id_list([7], [8, 9])
    write_oumvlp_frame("00007", "090_01", "0002_keypoints.json", [person(x=20.0)])
    write_oumvlp_frame("00007", "090_01", "00007_090_01_000000000010_keypoints.json", [person(x=100.0)])
    write_oumvlp_frame("00007", "090_01", "0001_keypoint.json", [person(x=10.0)])
    write_oumvlp_frame("00007", "090_01", "0005_keypoints.json", [])
    reader = OumvlpReader(oumvlp_root)
    poses = reader.read()
    m = poses.meta.iloc[0]
    assert (m.subject, m.seq, m.view, m.n_frames) == (7, 1, "090", 3)
    np.testing.assert_allclose(poses.frames[:, 0, 0], [10.0, 20.0, 100.0])
    assert reader.split_subjects() == {"train": [7], "test": [8, 9]}


def test_people0_not_taken_blindly(write_oumvlp_frame, write_id_list, oumvlp_root, person):
    write_id_list([7], [8])
    for k in range(6):
        walker = person(x=500.0 + 10 * k, scale=400.0)
        if k in (2, 3):  # a big but faint stranger far away, listed first
            write_oumvlp_frame(
                "00007", "000_00", f"{k:04d}_keypoints.json", [person(x=-1000.0, scale=420.0, conf=0.95), walker]
            )
        else:
            write_oumvlp_frame("00007", "000_00", f"{k:04d}_keypoints.json", [walker])
    reader = OumvlpReader(oumvlp_root)
    poses = reader.read()
    np.testing.assert_allclose(poses.frames[:, 0, 0], [500.0 + 10 * k for k in range(6)], atol=1e-3)
    assert reader.stats.multi_person_frames == 2 and reader.stats.not_highest_score == 2


def test_missing_root_and_id_list(oumvlp_root, write_oumvlp_frame, person):
    with pytest.raises(DatasetFormatError, match=r"dataset root: .*no folder .*openpose\n  hint: OUMVLP-Pose is not"):
        OumvlpReader(oumvlp_root).files()
    write_oumvlp_frame("00001", "000_00", "0000_keypoints.json", [person()])
    with pytest.raises(DatasetFormatError, match=r"dataset root: expected ID_list.csv.*found no ID_list.csv"):
        OumvlpReader(oumvlp_root).read()


@pytest.mark.parametrize(
    ("content", "location", "found"),
    [
        ("", "file", "an empty file"),
        ('{"people": [{"pose_keypoints_2d": [1.0, ', "line 1 column", "truncated"),
        ("[]", "people", "found list"),
        ('{"version": 1.3}', "people", "no list under key 'people'"),
        ('{"people": [{"face_keypoints_2d": []}]}', r"people\[0\]", "no pose_keypoints_2d"),
        ('{"people": [{"pose_keypoints_2d": [1.0, 2.0, 0.5]}]}', r"people\[0\]\.pose_keypoints_2d", "3 values"),
        (
            '{"people": [{"pose_keypoints_2d": [' + "1.0, " * 53 + "NaN]}]}",
            r"people\[0\]\.pose_keypoints_2d\[53\]",
            "nan",
        ),
        (
            '{"people": [{"pose_keypoints_2d": [' + "1.0, " * 53 + '"x"]}]}',
            r"people\[0\]\.pose_keypoints_2d\[53\]",
            "'x'",
        ),
    ],
    ids=["empty", "truncated", "not-object", "no-people", "no-keypoints", "17-joints", "nan", "string"],
)
def test_frame_errors(write_oumvlp_frame, write_id_list, oumvlp_root, content, location, found, person):
    write_id_list([1], [2])
    write_oumvlp_frame("00001", "000_00", "0000_keypoints.json", [person()])
    path = write_oumvlp_frame("00001", "000_00", "0001_keypoints.json", content)
    with pytest.raises(DatasetFormatError, match=rf"{path}: {location}.*{found}"):
        OumvlpReader(oumvlp_root).read()


@pytest.mark.parametrize(
    ("subject", "seq_dir", "name", "match"),
    [
        ("00001", "000_00", "frame.json", r"file name: .*'frame.json'"),
        ("00001", "010_00", "0000_keypoints.json", r"folder name: expected <view>_<seq>.*'010_00'"),
        ("subj1", "000_00", "0000_keypoints.json", r"subj1: folder name: expected a numeric subject id"),
    ],
)
def test_name_errors(write_oumvlp_frame, write_id_list, oumvlp_root, subject, seq_dir, name, match, person):
    write_id_list([1], [2])
    write_oumvlp_frame(subject, seq_dir, name, [person()])
    with pytest.raises(DatasetFormatError, match=match):
        OumvlpReader(oumvlp_root).read()


def test_duplicate_frame_number(write_oumvlp_frame, write_id_list, oumvlp_root, person):
    write_id_list([1], [2])
    write_oumvlp_frame("00001", "000_00", "0003_keypoints.json", [person()])
    write_oumvlp_frame("00001", "000_00", "x_000000000003_keypoints.json", [person()])
    with pytest.raises(DatasetFormatError, match=r"file name: expected each frame number once.*found frame 3 again"):
        OumvlpReader(oumvlp_root).read()


def test_sequence_without_people_is_short(write_oumvlp_frame, write_id_list, oumvlp_root, person):
    write_id_list([1], [2])
    write_oumvlp_frame("00001", "000_00", "0000_keypoints.json", [])
    write_oumvlp_frame("00001", "000_01", "0000_keypoints.json", [person()])
    assert list(OumvlpReader(oumvlp_root).read().meta.seq) == [1]
    with pytest.raises(DatasetFormatError, match=r"openpose/00001/000_00: sequence .*found 0 frames"):
        OumvlpReader(oumvlp_root, short_policy="error").read()


def test_bad_id_list(write_oumvlp_frame, oumvlp_root, person):
    write_oumvlp_frame("00001", "000_00", "0000_keypoints.json", [person()])
    (oumvlp_root / "ID_list.csv").write_text("train,test\n1,x\n")
    with pytest.raises(DatasetFormatError, match=r"ID_list.csv: table: expected integer subject ids"):
        OumvlpReader(oumvlp_root).split_subjects()
