"""CasiaBReader: round trip from the synthetic generator and one test per validation case."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from gaitgraph.data.casia_b import COLUMNS, CasiaBReader
from gaitgraph.data.synthetic import generate_casia_b
from gaitgraph.errors import DatasetFormatError


def read(path, **kw):
    return CasiaBReader(path.parent, file=path.name, **kw).read()


def test_synthetic_round_trip(tmp_path):
    path = generate_casia_b(
        tmp_path / "casia-b" / "casia-b_pose_coco.csv", n_subjects=3, n_views=4, frames=20, drop_prob=0.1, seed=3
    )
    poses = CasiaBReader(tmp_path / "casia-b").read()
    meta = poses.meta
    assert len(poses) == 3 * 10 * 4
    assert sorted(meta.subject.unique()) == [1, 2, 3]
    assert list(meta.view.unique()) == ["000", "018", "036", "054"]
    assert meta.groupby("condition").seq.max().to_dict() == {"bg": 2, "cl": 2, "nm": 6}
    assert meta.source[0] == "001-bg-01-000"
    rows = sum(1 for _ in path.open()) - 1
    assert poses.frames.shape == (rows, 17, 3) and meta.n_frames.sum() == rows
    assert 0 < poses.frames[..., 2].min() and poses.frames[..., 2].max() <= 1
    first = path.read_text().splitlines()[1].split(",")
    np.testing.assert_allclose(poses.frames[0].ravel(), np.array(first[1:], float), atol=1e-3)


def test_gaps_kept_and_unsorted_rows_sorted(write_casia_csv, casia_rows):
    rows = casia_rows(["./002-nm-01-090", "./001-cl-02-180"], frames=[3, 1, 7])
    path = write_casia_csv(rows)
    poses = read(path)
    assert list(poses.meta.source) == ["001-cl-02-180", "002-nm-01-090"]
    assert list(poses.meta.n_frames) == [3, 3]
    # rows of 001 are file rows 3, 4, 5 in frame order 3, 1, 7 -> sorted 1, 3, 7
    expected = np.array([rows[i][1] for i in (4, 3, 5)], float).reshape(3, 17, 3)
    np.testing.assert_allclose(poses.sequence(0), expected, atol=1e-4)


def test_missing_file_hint(tmp_path):
    with pytest.raises(
        DatasetFormatError, match=r"casia-b_pose_coco.csv: file: .*no such file\n  hint: .*release v0.1"
    ):
        CasiaBReader(tmp_path).files()


def test_empty_file(write_casia_csv):
    path = write_casia_csv([])
    path.write_text("")
    with pytest.raises(DatasetFormatError, match=rf"{path}: file: .*an empty file"):
        read(path)


def test_header_only(write_casia_csv):
    path = write_casia_csv([])
    with pytest.raises(DatasetFormatError, match=r"line 2: .*no data rows"):
        read(path)


def test_missing_and_renamed_columns(write_casia_csv, casia_rows):
    header = list(COLUMNS)
    header[4] = "leye_x"
    path = write_casia_csv(casia_rows(["./001-nm-01-000"]), header=header)
    with pytest.raises(
        DatasetFormatError, match=r"header \(line 1\): .*no column\(s\) left_eye_x; unexpected column\(s\) leye_x"
    ):
        read(path)


def test_non_numeric_value(write_casia_csv, casia_rows):
    rows = casia_rows(["./001-nm-01-000"])
    rows[2][1][7] = "abc"  # right_eye_y
    path = write_casia_csv(rows)
    with pytest.raises(DatasetFormatError, match=r"line 4 column right_eye_y: expected a number, found 'abc'"):
        read(path)


@pytest.mark.parametrize(("value", "found"), [("", "an empty value"), ("nan", "an empty value"), ("inf", "inf")])
def test_not_finite(write_casia_csv, casia_rows, value, found):
    rows = casia_rows(["./001-nm-01-000"])
    rows[3][1][50] = value
    path = write_casia_csv(rows)
    with pytest.raises(
        DatasetFormatError, match=rf"line 5 column right_ankle_conf \(./001-nm-01-000/000004.jpg\): .*found {found}"
    ):
        read(path)


def test_wrong_field_count(write_casia_csv, casia_rows):
    rows = casia_rows(["./001-nm-01-000"])
    rows[1] = (rows[1][0], rows[1][1] + ["1.0"])
    path = write_casia_csv(rows)
    with pytest.raises(DatasetFormatError, match=r"CSV: expected 52 comma-separated fields.*line 3"):
        read(path)


@pytest.mark.parametrize(
    ("name", "location"),
    [
        ("001-nm-01-000.jpg", "image_name"),
        ("./001-nm-01-000/1.jpg", "image_name"),
        ("./001_nm_01_000/000001.jpg", "image_name"),
        ("./001-nm-01-000/000001.png", "image_name"),
        ("./001-xx-01-000/000001.jpg", "image_name condition"),
        ("./001-bg-03-000/000001.jpg", "image_name sequence"),
        ("./001-nm-01-045/000001.jpg", "image_name view"),
    ],
)
def test_bad_image_name(write_casia_csv, casia_rows, name, location):
    rows = casia_rows(["./001-nm-01-000"])
    rows[4] = (name, rows[4][1])
    path = write_casia_csv(rows)
    with pytest.raises(DatasetFormatError, match=rf"{path}: line 6 {location}: expected .*found '{name}'"):
        read(path)


def test_duplicate_frame(write_casia_csv, casia_rows):
    rows = casia_rows(["./001-nm-01-000"], frames=[1, 2, 3, 2, 5])
    path = write_casia_csv(rows)
    with pytest.raises(
        DatasetFormatError,
        match=r"line 5 image_name: expected each frame of a sequence once, found "
        r"'./001-nm-01-000/000002.jpg' again \(also on line 3\)",
    ):
        read(path)


def test_short_policy(write_casia_csv, casia_rows, caplog):
    path = write_casia_csv(casia_rows(["./001-nm-01-000"], frames=[1, 2]) + casia_rows(["./001-nm-02-000"]))
    with caplog.at_level(logging.WARNING):
        poses = read(path, min_frames=3)
    assert list(poses.meta.source) == ["001-nm-02-000"]
    assert sum("dropped 1 of 2" in m and "001-nm-01-000 (2)" in m for m in caplog.messages) == 1
    with pytest.raises(DatasetFormatError, match=r"casia-b_pose_coco.csv: sequence '001-nm-01-000': .*found 2 frames"):
        read(path, min_frames=3, short_policy="error")
