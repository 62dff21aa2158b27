"""Fixtures that write small pose files in the exact public formats (docs/formats.md) into tmp_path."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from gaitgraph.skeletons import COCO17_JOINTS as COCO17

CASIA_B_HEADER = ["image_name"] + [f"{j}_{c}" for j in COCO17 for c in ("x", "y", "conf")]


def psymo_detection(frame: int, x: float = 500.0, score: float = 3.0, h: float = 400.0, conf: float = 0.9) -> dict:
    """One AlphaPose detection dict as in PsyMo: a box at ``x`` and 17 joints spread inside it."""
    joints = [[x + 5 * j, 100.0 + h * j / 17, conf] for j in range(17)]
    return {
        "image_id": f"{frame}.jpg",
        "category_id": 1,
        "keypoints": [v for joint in joints for v in joint],
        "score": score,
        "box": [x, 100.0, 0.4 * h, h],
        "idx": [0.0],
    }


@pytest.fixture
def det() -> Callable[..., dict]:
    """:func:`psymo_detection` as a fixture (test modules do not import conftest)."""
    return psymo_detection


@pytest.fixture
def psymo_root(tmp_path: Path) -> Path:
    return tmp_path / "psymo"


@pytest.fixture
def write_walk(psymo_root: Path) -> Callable[..., Path]:
    """Write one PsyMo walk file; ``content`` is a list of dicts, or raw text written as is."""

    def write(name: str = "003_45_1_0_txt.json", content: list | str | None = None, folder: str | None = None) -> Path:
        if content is None:
            content = [psymo_detection(k, x=500.0 + 20 * k) for k in range(12)]
        folder = folder if folder is not None else str(int(name[:3])) if name[:3].isdigit() else "0"
        path = psymo_root / "skeletons" / folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content if isinstance(content, str) else json.dumps(content))
        return path

    return write


@pytest.fixture
def write_casia_csv(tmp_path: Path) -> Callable[..., Path]:
    """Write a CASIA-B pose CSV; rows are (image_name, 51 values) or raw lines (str)."""

    def write(rows: list, header: list[str] | None = None, name: str = "casia-b_pose_coco.csv") -> Path:
        path = tmp_path / "casia-b" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [",".join(header or CASIA_B_HEADER)]
        for row in rows:
            lines.append(row if isinstance(row, str) else ",".join([row[0]] + [str(v) for v in row[1]]))
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture
def casia_rows() -> Callable[..., list]:
    """Rows of valid CASIA-B frames for the given folders (``./001-nm-01-000``) and frame numbers."""

    def rows(folders: list[str], frames: list[int] = (1, 2, 3, 4, 5)) -> list:
        rng = np.random.default_rng(0)
        out = []
        for folder in folders:
            for f in frames:
                vals = np.column_stack([rng.uniform(0, 320, 17), rng.uniform(0, 240, 17), rng.uniform(0.1, 1, 17)])
                out.append((f"{folder}/{f:06d}.jpg", [f"{v:.4f}" for v in vals.ravel()]))
        return out

    return rows


def openpose_person(
    x: float = 100.0, y: float = 50.0, scale: float = 100.0, conf: float = 0.8, joints: int = 18
) -> dict:
    pts = [[x + scale * 0.3 * np.sin(j), y + scale * j / joints, conf] for j in range(joints)]
    return {
        "person_id": [-1],
        "pose_keypoints_2d": [float(v) for p in pts for v in p],
        "face_keypoints_2d": [],
        "hand_left_keypoints_2d": [],
        "hand_right_keypoints_2d": [],
    }


@pytest.fixture
def person() -> Callable[..., dict]:
    """:func:`openpose_person` as a fixture."""
    return openpose_person


@pytest.fixture
def oumvlp_root(tmp_path: Path) -> Path:
    return tmp_path / "oumvlp"


@pytest.fixture
def write_oumvlp_frame(oumvlp_root: Path) -> Callable[..., Path]:
    """Write one OUMVLP-Pose frame JSON; ``people`` is a list of person dicts, or raw text."""

    def write(subject: str, seq_dir: str, name: str, people: list | str, source: str = "openpose") -> Path:
        path = oumvlp_root / source / subject / seq_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(people if isinstance(people, str) else json.dumps({"version": 1.3, "people": people}))
        return path

    return write


@pytest.fixture
def write_id_list(oumvlp_root: Path) -> Callable[[list[int], list[int]], Path]:
    """Write ``ID_list.csv``: train ids in column 0, test ids in column 1 (shorter one padded)."""

    def write(train: list[int], test: list[int]) -> Path:
        path = oumvlp_root / "ID_list.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        n = max(len(train), len(test))
        lines = ["train,test"]
        for i in range(n):
            a = f"{train[i]}" if i < len(train) else ""
            b = f"{test[i]}" if i < len(test) else ""
            lines.append(f"{a},{b}")
        path.write_text("\n".join(lines) + "\n")
        return path

    return write


@pytest.fixture(scope="session")
def psymo10_dir() -> Path:
    """The embedded real PsyMo-10 subset (``$GAITGRAPH_ROOT/data/psymo10`` or the repo's)."""
    root = Path(os.environ.get("GAITGRAPH_ROOT", Path(__file__).resolve().parents[2]))
    path = root / "data" / "psymo10"
    if not (path / "skeletons").is_dir():
        pytest.skip(f"real PsyMo-10 data not found at {path}")
    return path
