"""OUMVLP-Pose: one OpenPose-style JSON per frame, 18 OpenPose joints per person (docs/formats.md#oumvlp-pose).

Layout: ``<root>/<source>/<subject>/<view:03d>_<seq:02d>/<frame>_keypoints.json`` with source
``openpose`` or ``alphapose``, plus ``<root>/ID_list.csv`` (column 0 train ids, column 1 test ids).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.readers import FolderReader, clip_confidences, keypoint_boxes, load_json, number_rows
from gaitgraph.errors import ConfigError, DatasetFormatError

SOURCES = ("openpose", "alphapose")
VIEWS = tuple(f"{v:03d}" for v in (*range(0, 91, 15), *range(180, 271, 15)))
NUM_JOINTS = 18
_SEQ_DIR = re.compile(r"^(\d{3})_(\d{2})$")
# "0021_keypoints.json", "<video>_000000000021_keypoints.json", "<name>-0021.json"
_FRAME = re.compile(r"(\d+)(?:_keypoints?)?\.json$")


class OumvlpReader(FolderReader):
    """All sequences of one OUMVLP-Pose release (``source``: openpose or alphapose).

    Meta: subject (folder id), condition ``"nm"``, seq 0/1, view ``"000"``..``"270"``, source =
    ``<source>/<subject>/<view>_<seq>``. Frames are ordered by the number in the file name;
    frames listing nobody are skipped. With several people, one is chosen by the track rule of
    :func:`gaitgraph.data.readers.pick_track` on boxes around each person's detected joints,
    scored by the sum of joint confidences (GaitGraph2 took ``people[0]``, which jumps).
    Subject folders are the units that ``workers`` processes parse in parallel.
    """

    label = "OUMVLP-Pose"
    hint = (
        "OUMVLP-Pose is not redistributable: request it from the dataset's owners (OU-ISIR), unpack "
        "<root>/{openpose,alphapose}/ and ID_list.csv into dataset.reader.root, or generate a "
        "synthetic one with gaitgraph.data.synthetic.generate_oumvlp"
    )
    file_depth = 1

    def __init__(
        self,
        root: str | Path,
        source: str = "openpose",
        min_frames: int = 1,
        short_policy: str = "drop",
        workers: int = 0,
    ) -> None:
        super().__init__(root, min_frames, short_policy, workers)
        if source not in SOURCES:
            raise ConfigError(
                "dataset.reader.source", source, f"one of {', '.join(SOURCES)} (keypoints=openpose|alphapose)"
            )
        self.source = source
        self.id_list = self.root / "ID_list.csv"

    def units(self) -> list[str]:
        folder = self.root / self.source
        if not folder.is_dir():
            raise self.missing(
                f"a folder {self.source}/<subject>/<view>_<seq>/ with frame JSONs", f"no folder {folder}"
            )
        subjects = [p.name for p in self.entries(folder, "dir")]
        if not subjects:
            raise self.missing(f"{self.source}/<subject>/<view>_<seq>/*.json", "no subject folders")
        return [f"{self.source}/{s}" for s in subjects]

    def extra_files(self) -> list[Path]:
        if not self.id_list.is_file():
            raise self.missing("ID_list.csv (train ids in column 0, test ids in column 1)", "no ID_list.csv")
        return [self.id_list]

    def unit_files(self, unit: str) -> list[Path]:
        return [f for _, frames in self._sequences(unit) for f in frames]

    def source_path(self, source: str) -> Path:
        return self.root / source

    def split_subjects(self) -> dict[str, list[int]]:
        """``{"train": [...], "test": [...]}`` from ID_list.csv (NaN padding dropped)."""
        path = self.extra_files()[0]
        try:
            table = pd.read_csv(path, dtype="Int64")
        except (ValueError, pd.errors.ParserError) as e:
            raise DatasetFormatError(path, "table", "integer subject ids in two columns", str(e)) from e
        if table.shape[1] < 2:
            raise DatasetFormatError(path, "header", "two columns (train ids, test ids)", f"{table.shape[1]} column(s)")
        return {name: sorted(int(v) for v in table.iloc[:, col].dropna()) for col, name in ((0, "train"), (1, "test"))}

    def read_unit(self, unit: str) -> PoseSet:
        frames, meta = [], []
        for folder, paths in self._sequences(unit):
            meta.append(self._meta(folder))
            frames.append(self._read_sequence(paths))
        return PoseSet.from_sequences(frames, meta, num_joints=NUM_JOINTS)

    def _sequences(self, unit: str) -> list[tuple[Path, list[Path]]]:
        """(sequence folder, its frame JSONs) of one subject, in name order; folders without JSONs are skipped."""
        out = []
        for seq in self.entries(self.unit_dir(unit), "dir"):
            frames = self.entries(seq, "file", ".json")
            if frames:
                out.append((seq, frames))
        return out

    def _meta(self, folder: Path) -> dict:
        m = _SEQ_DIR.match(folder.name)
        if m is None or m.group(1) not in VIEWS:
            raise DatasetFormatError(
                folder, "folder name", f"<view>_<seq> with view one of {', '.join(VIEWS)}", repr(folder.name)
            )
        if not folder.parent.name.isdigit():
            raise DatasetFormatError(folder.parent, "folder name", "a numeric subject id", repr(folder.parent.name))
        return {
            "subject": int(folder.parent.name),
            "condition": "nm",
            "seq": int(m.group(2)),
            "view": m.group(1),
            "source": folder.relative_to(self.root).as_posix(),
        }

    def _read_sequence(self, paths: list[Path]) -> np.ndarray:
        numbered = {}
        for path in paths:
            m = _FRAME.search(path.name)
            if m is None:
                raise DatasetFormatError(
                    path, "file name", "<frame>_keypoints.json, e.g. 0021_keypoints.json", repr(path.name)
                )
            k = int(m.group(1))
            if k in numbered:
                raise DatasetFormatError(
                    path,
                    "file name",
                    "each frame number once per sequence",
                    f"frame {k} again (also {numbered[k].name})",
                )
            numbered[k] = path
        poses = [people for people in (self._people(numbered[k]) for k in sorted(numbered)) if len(people)]
        if not poses:
            return np.zeros((0, NUM_JOINTS, 3), np.float32)
        if any(len(people) > 1 for people in poses):  # boxes cost a third of the parse: only when needed
            chosen = self.choose_people([keypoint_boxes(p) for p in poses], [p[..., 2].sum(axis=1) for p in poses])
            frames = np.stack([p[c] for p, c in zip(poses, chosen)])
        else:
            frames = np.concatenate(poses)
        frames = frames.astype(np.float32)
        return clip_confidences(frames, paths[0].parent, self.stats)

    def _people(self, path: Path) -> np.ndarray:
        data = load_json(path)
        people = data.get("people") if isinstance(data, dict) else None
        if not isinstance(people, list):
            found = type(data).__name__ if not isinstance(data, dict) else "no list under key 'people'"
            raise DatasetFormatError(path, "people", 'an object {"people": [...]}', found)
        for i, person in enumerate(people):
            if not isinstance(person, dict) or "pose_keypoints_2d" not in person:
                raise DatasetFormatError(
                    path,
                    f"people[{i}]",
                    "an object with key pose_keypoints_2d",
                    type(person).__name__ if not isinstance(person, dict) else "no pose_keypoints_2d",
                )
        flat = number_rows(
            [p["pose_keypoints_2d"] for p in people],
            3 * NUM_JOINTS,
            path,
            lambda i: f"people[{i}].pose_keypoints_2d",
            "18 OpenPose joints x (x, y, confidence)",
        )
        return flat.reshape(-1, NUM_JOINTS, 3)
