"""Absurd numbers are rejected by every reader, naming file and location; messages never echo a whole file."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import numpy as np
import pytest

from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.oumvlp import OumvlpReader
from gaitgraph.data.pkl import PosePklReader
from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.errors import DatasetFormatError

# 1e300 is finite in float64 but inf in the float32 cache; 1e30 stays finite but wipes out a normalised sequence.
ABSURD = [1e300, 1e30]


@pytest.mark.parametrize("value", ABSURD)
def test_csv(write_casia_csv, casia_rows, value: float):
    rows = casia_rows(["./001-nm-01-000"])
    name, values = rows[2]
    rows[2] = (name, values[:12] + [repr(value)] + values[13:])  # joint 4 (right_ear) x
    path = write_casia_csv(rows)
    with pytest.raises(
        DatasetFormatError,
        match=rf"{path}: line 4 column right_ear_x \(\./001-nm-01-000/000003\.jpg\): "
        r"expected a finite number within \+-100000, found",
    ):
        CasiaBReader(path.parent).read()


@pytest.mark.parametrize("value", ABSURD)
def test_oumvlp_json(write_oumvlp_frame, write_id_list, oumvlp_root, person, value: float):
    write_id_list([1], [2])
    write_oumvlp_frame("00001", "000_00", "0000_keypoints.json", [person()])
    bad = person()
    bad["pose_keypoints_2d"][7] = value  # joint 2 (r_shoulder) y
    path = write_oumvlp_frame("00001", "000_00", "0001_keypoints.json", [bad])
    with pytest.raises(
        DatasetFormatError,
        match=rf"{path}: people\[0\]\.pose_keypoints_2d\[7\] \(joint 2 y\): "
        rf"expected a finite number within \+-100000, found {re.escape(repr(value))}",
    ):
        OumvlpReader(oumvlp_root).read()


@pytest.mark.parametrize("value", ABSURD)
def test_psymo_json(write_walk, psymo_root, det, value: float):
    content = [det(k) for k in range(6)]
    content[3]["keypoints"][15] = value  # joint 5 (left_shoulder) x
    path = write_walk("005_45_0_0_cl.json", content)
    with pytest.raises(DatasetFormatError, match=rf"{path}: \[3\]\.keypoints\[15\] \(joint 5 x\): expected a finite"):
        PsyMoReader(psymo_root).read()


@pytest.mark.parametrize("value", ABSURD)
def test_pose_pickle(tmp_path: Path, value: float):
    arr = np.full((5, 17, 3), 0.5)
    arr[4, 16, 1] = value
    path = tmp_path / "0001" / "camid0_videoid1" / "seq0" / "seq0.pkl"
    path.parent.mkdir(parents=True)
    path.write_bytes(pickle.dumps(arr))
    with pytest.raises(DatasetFormatError, match=rf"{path}: frame 4 joint 16 y: expected a finite number within"):
        PosePklReader(tmp_path, layout=r"(?P<subject>\d{4})/[^/]+/[^/]+").read()


def test_a_wrong_file_is_not_echoed(write_casia_csv):
    """A 200 KB one-line JSON given as the CSV: the header complaint is cut, not the whole file."""
    path = write_casia_csv([], header=[json.dumps({"k" * 20: list(range(40_000))})])
    with pytest.raises(DatasetFormatError) as err:
        CasiaBReader(path.parent).read()
    message = str(err.value)
    assert str(path) in message and "header" in message
    assert len(message) < 800 and "characters)" in message
