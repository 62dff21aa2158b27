"""What every pose reader shares: the reader interface, the short-sequence policy, person
selection in multi-person frames, and validation helpers that name the offending file and key.

A reader is a small class built by Hydra from a dataset config's ``reader:`` node. It has two
methods: :meth:`PoseReader.files` (every source file the result depends on, for the cache
fingerprint) and :meth:`PoseReader.read` (a validated :class:`PoseSet` in the source's pixel
coordinates). Adding a dataset means one module with one subclass plus one config file.

Datasets of many files derive from :class:`FolderReader`: their work is split into unit folders
(subjects) parsed by a process pool (``workers``) and streamed to the cache chunk by chunk
(:meth:`PoseReader.chunks`), so neither time nor memory grows out of hand at OUMVLP-Pose scale.

Every number a reader accepts is finite and within :data:`VALUE_LIMIT` (checked before the cast to
the float32 cache, so 1e300 cannot become inf and 1e30 cannot wipe out a normalised sequence).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import os
import re
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from gaitgraph.data.parallel import ordered_map
from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError, DatasetFormatError, readable

log = logging.getLogger(__name__)

SHORT_POLICIES = ("drop", "error")
#: Largest magnitude a pose value may have: pixel coordinates of any camera (and confidences, which
#: are clipped to [0, 1] afterwards) lie far inside it, and it is finite in float32, the cache dtype.
VALUE_LIMIT = 1e5
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


@dataclass
class TrackStats:
    """How often a frame held several people, and how often the track rule overrode the score."""

    multi_person_frames: int = 0
    not_highest_score: int = 0
    multi_person_sequences: int = 0
    clipped_confidences: int = 0
    #: Entries of the tree that were not read (see :meth:`PoseReader.entries`), each with the reason.
    skipped: list[str] = field(default_factory=list)

    def add(self, other: TrackStats) -> None:
        """Add another reader's counts (a worker process's) to these."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))


@dataclass
class ShortLog:
    """Short sequences dropped so far: how many, out of how many, and the first few by name."""

    dropped: int = 0
    total: int = 0
    examples: list[str] = field(default_factory=list)
    shortest: int | None = None
    longest: int | None = None


class PoseReader(ABC):
    """Base of all readers.

    Args:
        root: dataset folder (or the folder holding the dataset's file).
        min_frames: sequences with fewer frames are short.
        short_policy: ``"drop"`` short sequences with one logged warning, or ``"error"``.
    """

    #: Name used in messages and progress bars.
    label: str = "dataset"
    #: How to obtain the dataset, shown when it is missing.
    hint: str = ""

    def __init__(self, root: str | Path, min_frames: int = 1, short_policy: str = "drop") -> None:
        if short_policy not in SHORT_POLICIES:
            raise ConfigError("dataset.reader.short_policy", short_policy, f"one of {', '.join(SHORT_POLICIES)}")
        if int(min_frames) < 1:
            raise ConfigError("dataset.reader.min_frames", min_frames, "an integer >= 1")
        self.root = Path(root)
        self.min_frames = int(min_frames)
        self.short_policy = short_policy
        self.stats = TrackStats()

    @abstractmethod
    def files(self) -> list[Path]:
        """Every source file the result depends on (raises if the dataset is missing)."""

    @abstractmethod
    def read(self) -> PoseSet:
        """Parse and validate the source; poses stay in the source's pixel coordinates."""

    def source_path(self, source: str) -> Path:
        """The file that holds sequence ``source`` (a path relative to the root by default)."""
        return self.root / source

    def missing(self, what: str, found: str) -> DatasetFormatError:
        """The error for an absent or empty dataset, with the hint how to get it."""
        return DatasetFormatError(self.root, "dataset root", what, found, self.hint)

    def entries(self, folder: str | Path, kind: str, suffix: str = "") -> list[Path]:
        """The sub-folders (``kind="dir"``) or regular files ending in ``suffix`` (``kind="file"``) of ``folder``
        that may be read, sorted.

        Readers open regular files only: a FIFO, device or socket (reading it could block for ever), a broken
        link, and a link that leads out of the dataset root (its real path is not below the root's) are skipped
        and recorded in :attr:`stats` (one warning per read, :meth:`log_stats`). A name that is not UTF-8 is
        refused: it could not be stored in the cache nor named in a log.
        """
        out = []
        for entry in os.scandir(folder):
            if not entry.name.endswith(suffix):
                continue
            problem = self._unreadable(entry, kind)
            if problem == "":
                continue  # a file where folders are listed, or the reverse: not part of the layout
            if problem:
                self.stats.skipped.append(f"{readable(entry.path)} ({problem})")
                continue
            check_name(entry.path)
            out.append(Path(entry.path))
        return sorted(out)

    def _unreadable(self, entry: os.DirEntry, kind: str) -> str | None:
        """None for an entry of ``kind`` to read, "" for one of the other kind, else why it is skipped."""
        if entry.is_symlink():
            real = os.path.realpath(entry.path)
            if os.path.commonpath([real, self.real_root]) != self.real_root:
                return f"a link out of the dataset, to {readable(real)}"
        if entry.is_dir():
            return None if kind == "dir" else ""
        if entry.is_file():
            return None if kind == "file" else ""
        return "" if kind == "dir" else special_kind(entry.path)

    @property
    def real_root(self) -> str:
        """The dataset root with every link resolved (a root that is itself a link is fine)."""
        return os.path.realpath(self.root)

    def chunks(self) -> Iterator[PoseSet]:
        """The dataset as consecutive PoseSets, for streaming into the cache (one chunk by default)."""
        yield self.read()

    def apply_short_policy(self, poses: PoseSet) -> PoseSet:
        """Drop (one warning) or reject (error) sequences shorter than ``min_frames``."""
        seen = ShortLog()
        kept = self.keep_long(poses, seen)
        self.log_dropped(seen)
        self.check_left(seen)
        return kept

    def keep_long(self, poses: PoseSet, seen: ShortLog) -> PoseSet:
        """``poses`` without its short sequences, counted in ``seen``; raises under ``short_policy=error``."""
        seen.total += len(poses)
        if len(poses):
            low, high = int(poses.lengths.min()), int(poses.lengths.max())
            seen.shortest = low if seen.shortest is None else min(seen.shortest, low)
            seen.longest = high if seen.longest is None else max(seen.longest, high)
        short = np.flatnonzero(poses.lengths < self.min_frames)
        if len(short) == 0:
            return poses
        sources = poses.meta["source"].to_numpy()
        if self.short_policy == "error":
            i = int(short[0])
            raise DatasetFormatError(
                self.source_path(str(sources[i])),
                f"sequence '{sources[i]}'",
                f"at least min_frames={self.min_frames} frames",
                f"{int(poses.lengths[i])} frames",
                "set dataset.reader.short_policy=drop to skip short sequences, or lower min_frames",
            )
        seen.dropped += len(short)
        seen.examples += [f"{sources[i]} ({int(poses.lengths[i])})" for i in short[: 5 - len(seen.examples)]]
        return poses.select(poses.lengths >= self.min_frames)

    def log_dropped(self, seen: ShortLog) -> None:
        """One warning for every short sequence dropped (the first five named)."""
        if seen.dropped:
            more = f" and {seen.dropped - len(seen.examples)} more" if seen.dropped > len(seen.examples) else ""
            log.warning(
                "%s: dropped %d of %d sequences with fewer than %d frames: %s%s",
                self.label,
                seen.dropped,
                seen.total,
                self.min_frames,
                ", ".join(seen.examples),
                more,
            )

    def check_left(self, seen: ShortLog) -> None:
        """Refuse a read that leaves no sequence: none found, or every one shorter than ``min_frames``."""
        if seen.total == 0:
            raise self.missing("at least one pose sequence", "none in any file")
        if seen.dropped == seen.total:
            raise DatasetFormatError(
                self.root,
                f"{self.label} dataset",
                f"at least one sequence of min_frames={self.min_frames} frames or more",
                f"no sequence left after min_frames={self.min_frames}: all {seen.total} are shorter "
                f"(shortest {seen.shortest}, longest {seen.longest} frames)",
                f"lower dataset.reader.min_frames: {seen.longest} or less keeps at least the longest sequence",
            )

    def choose_people(self, boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> np.ndarray:
        """One person per frame of one sequence by :func:`pick_track`, counted in :attr:`stats`."""
        chosen, multi, differ = pick_track(boxes, scores)
        if multi:
            self.stats.multi_person_frames += multi
            self.stats.not_highest_score += differ
            self.stats.multi_person_sequences += 1
        return chosen

    def log_stats(self) -> None:
        """One summary line for multi-person frames and one warning for clipped confidences."""
        s = self.stats
        if s.multi_person_frames:
            log.info(
                "%s: %d frames in %d sequences held several people; the track rule chose someone other "
                "than the highest-scoring person in %d of them",
                self.label,
                s.multi_person_frames,
                s.multi_person_sequences,
                s.not_highest_score,
            )
        if s.clipped_confidences:
            log.warning("%s: clipped %d keypoint confidences above 1 to 1", self.label, s.clipped_confidences)
        if s.skipped:
            skipped = sorted(set(s.skipped))
            more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
            log.warning(
                "%s: skipped %d entries that are not regular files or lead out of the dataset root %s: %s%s",
                self.label,
                len(skipped),
                readable(self.root),
                "; ".join(skipped[:5]),
                more,
            )


class FolderReader(PoseReader):
    """A dataset of many files, grouped in unit folders (one per subject) parsed independently.

    Subclasses implement :meth:`units`, :meth:`unit_files` and :meth:`read_unit`. ``workers`` > 1
    parses the units in that many processes; 0 or 1 parses them here. The cache manifest
    (:mod:`gaitgraph.data.manifest`) uses :meth:`unit_dir` and :attr:`file_depth`.
    """

    #: Folder levels between a unit folder and the files (OUMVLP-Pose: subject/<view>_<seq>/file = 1).
    file_depth: int = 1

    def __init__(self, root: str | Path, min_frames: int = 1, short_policy: str = "drop", workers: int = 0) -> None:
        super().__init__(root, min_frames, short_policy)
        if int(workers) < 0:
            raise ConfigError("dataset.reader.workers", workers, "0 or 1 (in this process) or a number of processes")
        self.workers = int(workers)

    @abstractmethod
    def units(self) -> list[str]:
        """Unit folder names relative to the root, in output order (raises if the dataset is missing)."""

    @abstractmethod
    def unit_files(self, unit: str) -> list[Path]:
        """Every file of one unit that :meth:`read_unit` reads."""

    @abstractmethod
    def read_unit(self, unit: str) -> PoseSet:
        """The validated sequences of one unit (short sequences included; they are dropped later)."""

    def unit_dir(self, unit: str) -> Path:
        """The folder of ``unit``."""
        return self.root / unit

    def extra_files(self) -> list[Path]:
        """Files outside the units that the result depends on (split lists)."""
        return []

    def files(self) -> list[Path]:
        return [f for unit in self.units() for f in self.unit_files(unit)] + self.extra_files()

    def chunks(self) -> Iterator[PoseSet]:
        units = self.units()
        self.extra_files()  # a missing split file fails before any parsing
        seen = ShortLog()
        parts = ordered_map(_read_units, self, units, self.workers, f"Reading {self.label}", "folder")
        for group in parts:
            for poses, stats in group:
                self.stats.add(stats)
                yield self.keep_long(poses, seen)
        self.log_stats()
        self.log_dropped(seen)
        self.check_left(seen)

    def read(self) -> PoseSet:
        return PoseSet.concat(list(self.chunks()))


def scan_units(reader: FolderReader, units: Sequence[str]) -> list[tuple[str, dict[str, Any]]]:
    """Count, bytes and :func:`digest` of every file's (name, size, mtime) per unit: one stat per file.

    A task of the cache manifest (:mod:`gaitgraph.data.manifest`); it lives here so that its worker
    processes import the readers only, not the cache's heavier dependencies.
    """
    out = []
    for unit in units:
        base = reader.unit_dir(unit)
        rows = []
        for path in reader.unit_files(unit):
            st = path.stat()
            rows.append((path.relative_to(base).as_posix(), st.st_size, st.st_mtime_ns))
        out.append((unit, {"files": len(rows), "bytes": sum(r[1] for r in rows), "digest": digest(rows)}))
    return out


def special_kind(path: str | Path) -> str:
    """What a path that is neither a folder nor a regular file is, for a message."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return "a broken link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def check_name(path: str | Path) -> None:
    """Refuse a file or folder whose name is not UTF-8 (Python keeps such bytes as lone surrogates)."""
    name = os.path.basename(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        bad = ", ".join(f"0x{ord(c) - 0xDC00:02x}" for c in name if 0xDC80 <= ord(c) <= 0xDCFF)
        raise DatasetFormatError(
            os.path.dirname(path),
            f"entry '{readable(name)}'",
            "file and folder names in UTF-8",
            f"the byte(s) {bad or 'a lone surrogate'}, which are not UTF-8",
            "rename it (e.g. convmv -f latin1 -t utf8), or move it out of the dataset folder",
        ) from None


def digest(value: Any) -> str:
    """A short stable hash of a JSON-serialisable value."""
    return hashlib.sha256(json.dumps(value).encode()).hexdigest()[:32]


def _read_units(reader: FolderReader, units: Sequence[str]) -> list[tuple[PoseSet, TrackStats]]:
    """One task of :meth:`FolderReader.chunks` (runs in a worker process, or in this one)."""
    out = []
    for unit in units:
        local = copy.copy(reader)  # own counters, so a worker's counts travel back with its result
        local.stats = TrackStats()
        out.append((local.read_unit(unit), local.stats))
    return out


def load_json(path: Path) -> Any:
    """Parse one JSON file; empty or malformed files raise :class:`DatasetFormatError`."""
    raw = path.read_bytes()
    if not raw.strip():
        raise DatasetFormatError(path, "file", "JSON content", "an empty file")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as e:
        raise DatasetFormatError(path, f"byte {e.start}", "UTF-8 JSON", f"undecodable byte ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise DatasetFormatError(
            path, f"line {e.lineno} column {e.colno}", "valid JSON", f"{e.msg} (truncated or corrupt file?)"
        ) from e


def number_rows(rows: Sequence[Any], width: int, path: Path, where: Callable[[int], str], what: str) -> np.ndarray:
    """Stack JSON lists of ``width`` finite numbers into float64 ``[len(rows), width]``.

    ``where(i)`` names row ``i`` in messages (e.g. ``"[3].keypoints"``); ``what`` says what the
    row holds. The first bad row or value is reported.
    """
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            found = f"{len(row)} values" if isinstance(row, list) else type(row).__name__
            raise DatasetFormatError(path, where(i), f"a list of {width} numbers ({what})", found)
    arr = np.array(rows) if rows else np.zeros((0, width))
    if arr.dtype.kind not in "if":
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if isinstance(v, bool) or not isinstance(v, (int, float)):
                    raise DatasetFormatError(path, f"{where(i)}[{j}]", "a number", repr(v))
    arr = arr.astype(np.float64, copy=False)
    joint = (lambda j: f" (joint {j // 3} {_CHANNELS[j % 3]})") if width % 3 == 0 else (lambda j: "")
    check_values(arr, path, lambda i, j: f"{where(i)}[{j}]{joint(j)}")
    return arr


_CHANNELS = ("x", "y", "confidence")


def check_values(values: np.ndarray, path: Path, where: Callable[..., str]) -> None:
    """Reject the first value that is not finite or exceeds :data:`VALUE_LIMIT` in magnitude.

    ``where(*index)`` names the value's location (row, frame, joint) for the message.
    """
    bad = ~(np.abs(values) <= VALUE_LIMIT)  # NaN compares false, so it is caught as well
    if bad.any():
        index = tuple(int(k) for k in np.argwhere(bad)[0])
        raise DatasetFormatError(
            path, where(*index), f"a finite number within +-{VALUE_LIMIT:g}", repr(float(values[index]))
        )


def check_pose_values(frames: np.ndarray, path: Path) -> None:
    """:func:`check_values` on poses ``[T, J, 3]``, naming frame, joint and channel."""
    check_values(frames, path, lambda t, j, c: f"frame {t} joint {j} {_CHANNELS[c]}")


def plain_name(value: Any, key: str) -> str:
    """``value`` if it is a plain file or folder name (no separators, no ``..``); else a ConfigError on ``key``."""
    text = str(value)
    if not _PLAIN_NAME.match(text) or ".." in text:
        raise ConfigError(key, value, "a plain name: letters, digits, '.', '_' or '-', no path separators or '..'")
    return text


def finite_number(value: Any, path: Path, where: str) -> float:
    """A single finite JSON number, or a :class:`DatasetFormatError` naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise DatasetFormatError(path, where, "a finite number", repr(value))
    return float(value)


def clip_confidences(frames: np.ndarray, path: Path, stats: TrackStats) -> np.ndarray:
    """Clip confidences > 1 to 1 in place (counted); a negative confidence is an error."""
    conf = frames[..., 2]
    if (conf < 0).any():
        t, j = (int(k) for k in np.argwhere(conf < 0)[0])
        raise DatasetFormatError(path, f"frame {t} joint {j} confidence", "a value in [0, 1]", repr(float(conf[t, j])))
    over = conf > 1
    n = int(over.sum())
    if n:
        stats.clipped_confidences += n
        conf[over] = 1.0
    return frames


def keypoint_boxes(poses: np.ndarray) -> np.ndarray:
    """Boxes ``[n, 4]`` = (x, y, w, h) around the joints with confidence > 0 of ``poses [n, J, 3]``.

    A pose with no confident joint gets an all-zero box.
    """
    seen = poses[..., 2] > 0
    x = np.where(seen, poses[..., 0], np.nan)
    y = np.where(seen, poses[..., 1], np.nan)
    boxes = np.zeros((len(poses), 4))
    ok = seen.any(axis=1)
    if ok.any():
        x0, x1 = np.nanmin(x[ok], axis=1), np.nanmax(x[ok], axis=1)
        y0, y1 = np.nanmin(y[ok], axis=1), np.nanmax(y[ok], axis=1)
        boxes[ok] = np.stack([x0, y0, x1 - x0, y1 - y0], axis=1)
    return boxes


#: Weight of box movement against score in :func:`pick_track` (see there).
TRACK_MOVE_WEIGHT = 0.1


def pick_track(boxes: Sequence[np.ndarray], scores: Sequence[np.ndarray]) -> tuple[np.ndarray, int, int]:
    """Choose one person per frame so that the chosen people form the most plausible track.

    ``boxes[t]`` is ``[n_t, 4]`` (x, y, w, h) and ``scores[t]`` is ``[n_t]`` for the ``n_t >= 1``
    people of frame ``t`` (frames in time order). The rule is a shortest path over the frames
    (Viterbi): choosing a person costs ``1 - score / best score of its frame``, and stepping from
    the person chosen in one frame to the next costs
    ``0.1 * (|centre - prev_centre| / prev_size + |log(size / prev_size)|)`` with
    ``size = sqrt(w * h)``. So it starts from the highest score and follows the box nearest in
    centre and size, but a track that began on a bystander (the walker not yet detected) switches
    to the walker once the walker's higher scores outweigh one jump. A walker moves ~0.1 of its
    size per frame; a static, smaller bystander is several sizes away, so swapping back and forth
    between people is expensive and picking ``people[0]`` or the top score blindly is avoided.

    Returns the chosen index per frame, the number of multi-person frames, and how many of
    those chose someone other than the highest-scoring person.
    """
    best = np.array([int(np.argmax(s)) for s in scores], dtype=np.int64)
    multi = sum(len(s) > 1 for s in scores)
    if multi == 0:
        return best, 0, 0
    unary = [1.0 - s / max(float(s.max()), 1e-9) for s in scores]
    acc = unary[0]
    back = []
    for t in range(1, len(scores)):
        total = acc[:, None] + TRACK_MOVE_WEIGHT * _box_distance(boxes[t - 1], boxes[t])
        arg = np.argmin(total, axis=0)
        back.append(arg)
        acc = total[arg, np.arange(len(arg))] + unary[t]
    chosen = np.zeros(len(scores), dtype=np.int64)
    chosen[-1] = int(np.argmin(acc))
    for t in range(len(scores) - 1, 0, -1):
        chosen[t - 1] = back[t - 1][chosen[t]]
    differ = int(sum(len(s) > 1 and c != b for s, c, b in zip(scores, chosen, best)))
    return chosen, multi, differ


def _box_distance(prev: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """``[n_prev, n]`` centre distance in previous sizes plus the absolute log size ratio."""
    eps = 1e-6
    prev_size = np.sqrt(np.clip(prev[:, 2] * prev[:, 3], eps, None))[:, None]
    size = np.sqrt(np.clip(boxes[:, 2] * boxes[:, 3], eps, None))[None, :]
    prev_centre = prev[:, None, :2] + prev[:, None, 2:] / 2
    centre = boxes[None, :, :2] + boxes[None, :, 2:] / 2
    return np.linalg.norm(centre - prev_centre, axis=2) / prev_size + np.abs(np.log(size / prev_size))
