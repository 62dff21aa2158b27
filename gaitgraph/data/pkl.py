"""Pose pickles in the layout of FastPoseGait / OpenGait: CASIA-B-Pose, GREW, Gait3D (docs/formats-pkl.md).

One pickle per sequence, ``<root>/<subject>/<type>/<seq or view>/<name>.pkl``, holding a numpy array
``[T, V, 3]`` = (x, y, confidence). One reader serves every such dataset; what differs between them
is configuration (``conf/dataset/{casia_b_pkl,grew,gait3d}.yaml``):

``layout``
    a regular expression over a sequence folder's path relative to the root, with named groups
    ``subject`` (the subject folder name) and optionally ``condition``, ``seq`` (digits) and
    ``view``. A group the layout lacks takes its default: ``condition`` and ``view`` the configured
    labels, ``seq`` the sequence's position (from 0) among its subject's sequences of that condition
    in path order.
``subject_suffixes`` / ``unknown_subjects``
    how a subject folder name becomes the integer subject: its digits, plus the offset given for a
    suffix (GREW's training ids ``00001train`` must not collide with its test ids ``00001``);
    folder names listed in ``unknown_subjects`` (GREW's ``probe``) get :data:`UNKNOWN_SUBJECT`.
``split_file`` / ``probe_key``
    an optional JSON in the root with ``TRAIN_SET`` / ``TEST_SET`` lists of subject folder names
    (:meth:`PosePklReader.split_subjects`) and, under ``probe_key``, sequences written as
    ``<subject>-<type>-<seq>`` whose condition becomes ``probe_condition`` (Gait3D's probe set).

Pickles are loaded with :func:`gaitgraph.data.safe_pickle.load_pose_array` (no code runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.readers import FolderReader, check_pose_values, clip_confidences, load_json, plain_name
from gaitgraph.data.safe_pickle import load_pose_array
from gaitgraph.errors import ConfigError, DatasetFormatError

#: Subject of a sequence whose identity the dataset does not publish (GREW's probes); its
#: ``source`` keeps the video id. Such sequences belong to the test split.
UNKNOWN_SUBJECT = -1
_SUBJECT_NAME = re.compile(r"^(\d+)(\D*)$")
_SPLIT_KEYS = {"train": "TRAIN_SET", "test": "TEST_SET"}


class PosePklReader(FolderReader):
    """Every sequence of a pose-pickle dataset; subject folders are the units parsed in parallel.

    Meta: subject (int, see the module doc), condition, seq, view, source = the sequence folder
    relative to the root (its last part is the sequence or video id).
    """

    file_depth = 2

    def __init__(
        self,
        root: str | Path,
        layout: str,
        label: str = "pose pickles",
        hint: str = "",
        num_joints: int = 17,
        condition: str = "nm",
        view: str = "000",
        subject_suffixes: Mapping[str, int] | None = None,
        unknown_subjects: Sequence[str] = (),
        split_file: str | None = None,
        probe_key: str | None = None,
        probe_condition: str = "probe",
        min_frames: int = 1,
        short_policy: str = "drop",
        workers: int = 0,
    ) -> None:
        super().__init__(root, min_frames, short_policy, workers)
        self.layout = re.compile(layout)
        self.label, self.hint = label, hint
        self.num_joints = int(num_joints)
        self.condition, self.view = str(condition), str(view)
        self.subject_suffixes = {str(k): int(v) for k, v in (subject_suffixes or {}).items()}
        self.unknown_subjects = {str(s) for s in unknown_subjects}
        self.split_file = self.root / plain_name(split_file, "dataset.reader.split_file") if split_file else None
        if probe_key and self.split_file is None:
            raise ConfigError("dataset.reader.probe_key", probe_key, "null, since dataset.reader.split_file is null")
        self.probe_key, self.probe_condition = probe_key, str(probe_condition)

    def units(self) -> list[str]:
        if not self.root.is_dir():
            raise self.missing("a folder of <subject>/<type>/<sequence>/*.pkl", "no such folder")
        subjects = [p.name for p in self.entries(self.root, "dir")]
        if not subjects:
            raise self.missing("<subject>/<type>/<sequence>/*.pkl", "no subject folders")
        return subjects

    def extra_files(self) -> list[Path]:
        if self.split_file is None:
            return []
        if not self.split_file.is_file():
            raise self.missing(f"the split file {self.split_file.name}", f"no {self.split_file}")
        return [self.split_file]

    def unit_files(self, unit: str) -> list[Path]:
        return [pkl for _, pkl in self._sequences(unit)]

    def subject_id(self, name: str, where: Path) -> int:
        """The integer subject of a subject folder name (``where`` is named when it has none)."""
        if name in self.unknown_subjects:
            return UNKNOWN_SUBJECT
        m = _SUBJECT_NAME.match(name)
        if m is None or m.group(2) not in {"", *self.subject_suffixes}:
            suffixes = ", ".join(repr(s) for s in self.subject_suffixes) or "none"
            raise DatasetFormatError(where, "subject name", f"digits with an optional suffix ({suffixes})", repr(name))
        return int(m.group(1)) + self.subject_suffixes.get(m.group(2), 0)

    def split_subjects(self) -> dict[str, list[int]]:
        """``{"train": [...], "test": [...]}`` from the split file (unknown identities belong to test)."""
        if self.split_file is None:
            raise ConfigError("dataset.reader.split_file", None, "the split file's name, to take the split from")
        path = self.extra_files()[0]
        data = load_json(path)
        out = {}
        for name, key in _SPLIT_KEYS.items():
            names = data.get(key) if isinstance(data, dict) else None
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise DatasetFormatError(path, key, "a list of subject folder names", type(names).__name__)
            out[name] = sorted({self.subject_id(n, path) for n in names})
        return out

    @cached_property
    def probes(self) -> frozenset[str]:
        """Sequence folders (relative paths) listed under ``probe_key`` in the split file."""
        if not self.probe_key:
            return frozenset()
        path = self.extra_files()[0]
        data = load_json(path)
        entries = data.get(self.probe_key) if isinstance(data, dict) else None
        if not isinstance(entries, list) or not all(isinstance(e, str) and e.count("-") == 2 for e in entries):
            found = "other entries" if isinstance(entries, list) else type(entries).__name__
            raise DatasetFormatError(path, str(self.probe_key), "a list of '<subject>-<type>-<sequence>' names", found)
        return frozenset(e.replace("-", "/") for e in entries)

    def read_unit(self, unit: str) -> PoseSet:
        frames, meta = [], []
        for folder, pkl in self._sequences(unit):
            meta.append(self._meta(folder))
            frames.append(self._read_array(pkl))
        _number_sequences(meta)
        return PoseSet.from_sequences(frames, meta, num_joints=self.num_joints)

    def _sequences(self, unit: str) -> list[tuple[str, Path]]:
        """(sequence folder relative to the root, its one pickle) of a subject, in path order."""
        out = []
        for kind in self.entries(self.unit_dir(unit), "dir"):
            for seq in self.entries(kind, "dir"):
                pkls = self.entries(seq, "file", ".pkl")
                if len(pkls) > 1:
                    found = f"{len(pkls)}: {', '.join(p.name for p in pkls[:3])}"
                    raise DatasetFormatError(seq, "folder", "one .pkl per sequence folder", found)
                if pkls:
                    out.append((seq.relative_to(self.root).as_posix(), pkls[0]))
        return out

    def _meta(self, folder: str) -> dict[str, Any]:
        m = self.layout.fullmatch(folder)
        if m is None:
            expected = f"a path matching {self.layout.pattern}"
            raise DatasetFormatError(self.root / folder, "folder path", expected, repr(folder))
        found = m.groupdict()
        condition = found.get("condition") or self.condition
        if folder in self.probes:
            condition = self.probe_condition
        return {
            "subject": self.subject_id(found["subject"], self.root / folder),
            "condition": condition,
            "seq": int(found["seq"]) if found.get("seq") is not None else -1,
            "view": found.get("view") or self.view,
            "source": folder,
        }

    def _read_array(self, path: Path) -> np.ndarray:
        arr = load_pose_array(path, self.num_joints)
        check_pose_values(arr, path)
        return clip_confidences(arr.astype(np.float32), path, self.stats)


def _number_sequences(meta: list[dict[str, Any]]) -> None:
    """Sequences without a ``seq`` from the layout (-1) are numbered from 0 per (subject, condition)."""
    counts: dict[tuple[int, str], int] = {}
    for row in meta:
        if row["seq"] < 0:
            key = (row["subject"], row["condition"])
            row["seq"] = counts.get(key, 0)
            counts[key] = row["seq"] + 1
