"""PsyMo AlphaPose COCO-17 skeletons (the embedded PsyMo-10 subset; data/psymo10/README.md).

Layout: ``<root>/skeletons/<ID>/<IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json``, one file per walk. Each
file is a JSON list with one dict per detected person per frame (keys ``image_id`` "<k>.jpg",
``keypoints`` 17x(x, y, c), ``score``, ``box`` [x, y, w, h]).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.readers import (
    FolderReader,
    clip_confidences,
    finite_number,
    load_json,
    number_rows,
)
from gaitgraph.errors import DatasetFormatError

VARIATIONS = ("nm", "bg", "cl", "ph", "txt", "wsf", "wss")
NUM_JOINTS = 17
_NAME = re.compile(r"^(\d{3})_(\d{2})_(\d)_(\d)_([a-z]+)\.json$")
_IMAGE_ID = re.compile(r"^(\d+)\.jpg$")
_KEYS = ("image_id", "keypoints", "score", "box")


class PsyMoReader(FolderReader):
    """One sequence per walk file.

    Meta: subject = folder ID, condition = VAR, seq = RUN, view = ``"<VIEW>_<DIR>"`` (e.g.
    ``"45_1"``), source = path relative to ``root``.

    Frames are the distinct ``image_id`` values in numeric order; missing indices stay missing
    (no filling). Frames with several people (9% of PsyMo-10's, mostly bystanders in view 00)
    keep one person by the track rule of :func:`gaitgraph.data.readers.pick_track`: high
    ``score`` and a box that stays near, in centre and size, to the box chosen in the frame
    before (a shortest path over the walk). Confidences above 1 (AlphaPose produces a few) are
    clipped to 1, with one counted warning per read.
    """

    label = "PsyMo"
    hint = (
        "PsyMo-10 ships with the repository in data/psymo10 (skeletons/<ID>/*.json); point "
        "paths.data_dir or dataset.reader.root at the folder that holds skeletons/"
    )

    file_depth = 0

    def units(self) -> list[str]:
        if not self.root.is_dir():
            raise self.missing("a folder holding skeletons/<ID>/*.json", "no such folder")
        top = self.root / "skeletons"
        folders = [p.name for p in self.entries(top, "dir") if self.entries(p, "file", ".json")] if top.is_dir() else []
        if not folders:
            raise self.missing("skeletons/<ID>/*.json files", "none")
        return [f"skeletons/{f}" for f in sorted(folders, key=_folder_order)]

    def unit_files(self, unit: str) -> list[Path]:
        return self.entries(self.unit_dir(unit), "file", ".json")

    def read_unit(self, unit: str) -> PoseSet:
        sequences, meta = [], []
        for path in self.unit_files(unit):
            meta.append(self._meta(path))
            sequences.append(self._read_walk(path))
        return PoseSet.from_sequences(sequences, meta, num_joints=NUM_JOINTS)

    def _meta(self, path: Path) -> dict:
        m = _NAME.match(path.name)
        if m is None:
            raise DatasetFormatError(
                path, "file name", "<IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json, e.g. 004_45_1_0_txt.json", repr(path.name)
            )
        idpad, view, direction, run, var = m.groups()
        if not path.parent.name.isdigit() or int(path.parent.name) != int(idpad):
            raise DatasetFormatError(
                path, "file name", f"the subject ID of its folder ({path.parent.name})", f"ID {idpad}"
            )
        if var not in VARIATIONS:
            raise DatasetFormatError(path, "file name variation", f"one of {', '.join(VARIATIONS)}", repr(var))
        return {
            "subject": int(idpad),
            "condition": var,
            "seq": int(run),
            "view": f"{view}_{direction}",
            "source": path.relative_to(self.root).as_posix(),
        }

    def _read_walk(self, path: Path) -> np.ndarray:
        data = load_json(path)
        if not isinstance(data, list):
            raise DatasetFormatError(path, "top level", "a list of detections", type(data).__name__)
        if not data:
            raise DatasetFormatError(path, "top level", "at least one detection", "an empty list")
        frame_ids = []
        for i, det in enumerate(data):
            if not isinstance(det, dict):
                raise DatasetFormatError(path, f"[{i}]", "a detection object", type(det).__name__)
            missing = [k for k in _KEYS if k not in det]
            if missing:
                raise DatasetFormatError(path, f"[{i}]", f"keys {', '.join(_KEYS)}", f"no {', '.join(missing)}")
            image_id = det["image_id"]
            m = _IMAGE_ID.match(image_id) if isinstance(image_id, str) else None
            if m is None:
                raise DatasetFormatError(path, f"[{i}].image_id", '"<frame>.jpg", e.g. "12.jpg"', repr(image_id))
            frame_ids.append(int(m.group(1)))
        kps = number_rows(
            [d["keypoints"] for d in data],
            3 * NUM_JOINTS,
            path,
            lambda i: f"[{i}].keypoints",
            "17 COCO joints x (x, y, confidence)",
        )
        boxes = number_rows([d["box"] for d in data], 4, path, lambda i: f"[{i}].box", "x, y, w, h")
        scores = np.array([finite_number(d["score"], path, f"[{i}].score") for i, d in enumerate(data)])

        starts = _frame_groups(frame_ids, path)
        ends = starts[1:] + [len(data)]
        order = sorted(range(len(starts)), key=lambda g: frame_ids[starts[g]])
        groups = [(starts[g], ends[g]) for g in order]
        chosen = self.choose_people([boxes[a:b] for a, b in groups], [scores[a:b] for a, b in groups])
        rows = np.array([a for a, _ in groups]) + chosen
        frames = kps[rows].reshape(-1, NUM_JOINTS, 3).astype(np.float32)
        return clip_confidences(frames, path, self.stats)


def _frame_groups(frame_ids: list[int], path: Path) -> list[int]:
    """Start index of each run of equal ``image_id``; a frame seen again later is an error."""
    starts: list[int] = []
    first_at: dict[int, int] = {}
    for i, k in enumerate(frame_ids):
        if i and k == frame_ids[i - 1]:
            continue
        if k in first_at:
            raise DatasetFormatError(
                path,
                f"[{i}].image_id",
                "all detections of one frame next to each other (each frame once)",
                f'"{k}.jpg" again, first seen at [{first_at[k]}] with other frames in between',
            )
        first_at[k] = i
        starts.append(i)
    return starts


def _folder_order(folder: str) -> tuple:
    return (int(folder) if folder.isdigit() else float("inf"), folder)
