"""Does the recipe fit the data? Checked from the split file and the folder listing before the pose cache is built
(a cold build of a large tree takes a minute), so a recipe that cannot run on the data at hand (a synthetic tree, a
subset of a dataset) ends in one paragraph naming the overrides that fit, instead of failing after the build.

What is compared, for a folder dataset (one folder per subject; the CASIA-B CSV is one file, checked after the build):

- ``dataset.split.val_count`` against the training subjects of the split (the split's own check, with the fit);
- ``trainer.batch_size`` (random batches) against the training sequences, ``trainer.pk.p`` (P x K) against the
  training subjects;
- ``dataset.sequence_length`` against the longest training walk: frame files counted per sequence folder
  (OUMVLP-Pose), pose pickles and PsyMo walks opened one at a time until one is long enough, for at most
  :data:`PARSE_BUDGET_S` seconds (past that, the check after the build decides).

Subject folders are visited in order and the visit stops as soon as the recipe is known to fit, so a full-size
dataset costs a few folder listings. The counts are from before ``dataset.reader.min_frames`` drops short walks, so
a recipe found to fit here may still be refused, exactly, after the build.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gaitgraph.data.oumvlp import OumvlpReader
from gaitgraph.data.pkl import PosePklReader
from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.data.readers import FolderReader, load_json
from gaitgraph.data.safe_pickle import load_pose_array
from gaitgraph.data.splits import resolve_split
from gaitgraph.errors import ConfigError, DatasetFormatError

#: Seconds spent opening walks to find one as long as ``dataset.sequence_length``.
PARSE_BUDGET_S = 2.0


@dataclass
class Needs:
    """What the training config asks of the training split (None: not asked)."""

    sequence_length: int
    batch_size: int | None = None
    subjects: int | None = None


@dataclass
class Seen:
    """What the listing showed of the training split so far (``longest`` None: not known)."""

    sequences: int = 0
    subjects: int = 0
    longest: int | None = 0


def check_recipe(dataset_cfg: DictConfig, trainer_cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` naming every part of the recipe the data cannot hold and the overrides that
    fit; return quietly when it fits or when it cannot be told before the build."""
    problems: list[tuple[str, Any, str, Any]] = []  # (key, value asked, what the data holds, value that fits)
    split = _split(dataset_cfg, problems)
    reader = instantiate(dataset_cfg.reader)
    if isinstance(reader, FolderReader):
        random = trainer_cfg.sampler == "random"
        needs = Needs(
            int(dataset_cfg.sequence_length),
            int(trainer_cfg.batch_size) if random else None,
            None if random else int(trainer_cfg.pk.p),
        )
        problems += _shortfalls(needs, _survey(reader, set(split["train_subjects"]), needs))
    if problems:
        raise _paragraph(dataset_cfg, problems)


def _split(dataset_cfg: DictConfig, problems: list) -> dict[str, list[int]]:
    """The resolved subject split; when ``split.val_count`` holds out more than the training subjects allow, the
    split with a count that fits (a fifth of them, at least one), the mismatch added to ``problems``."""
    try:
        return resolve_split(dataset_cfg)
    except ConfigError as err:
        if err.key != "dataset.split.val_count" or dataset_cfg.split.get("val_subjects") is not None:
            raise
        asked = err.value
    plain = OmegaConf.create(OmegaConf.to_container(dataset_cfg, resolve=True))
    plain.split.val_count = 0
    n = len(resolve_split(plain)["train_subjects"])
    if n < 2:
        raise ConfigError("dataset.split.val_count", asked, f"0: the split has {n} training subject(s) to hold out")
    plain.split.val_count = max(1, n // 5)
    problems.append(("dataset.split.val_count", asked, f"{n} training subjects", plain.split.val_count))
    return resolve_split(plain)


def _survey(reader: FolderReader, train: set[int], needs: Needs) -> Seen:
    """Visit the training subjects' folders in order until the listing shows the recipe fits (or all are seen)."""
    seen = Seen()
    listed = _lengths_listed(reader)
    deadline = time.monotonic() + PARSE_BUDGET_S
    for unit in reader.units():
        if _unit_subject(reader, unit) not in train:
            continue
        lengths = _sequence_lengths(reader, unit)
        if not lengths:
            continue
        seen.subjects += 1
        seen.sequences += len(lengths)
        for get in lengths:
            if seen.longest is None or seen.longest >= needs.sequence_length:
                break
            found = get() if listed or time.monotonic() < deadline else None
            seen.longest = None if found is None else max(seen.longest, found)
        if _fits(needs, seen):
            break
    return seen


def _fits(needs: Needs, seen: Seen) -> bool:
    return (
        (seen.longest is None or seen.longest >= needs.sequence_length)
        and (needs.batch_size is None or seen.sequences >= needs.batch_size)
        and (needs.subjects is None or seen.subjects >= needs.subjects)
    )


def _shortfalls(needs: Needs, seen: Seen) -> list[tuple[str, Any, str, Any]]:
    """The (key, asked, what the data holds, fit) of each need the whole training split falls short of."""
    if seen.subjects == 0:
        return []  # no training subject has a folder: the split check after the build names the list
    out = []
    if needs.batch_size is not None and seen.sequences < needs.batch_size:
        out.append(("trainer.batch_size", needs.batch_size, f"{seen.sequences} training sequences", seen.sequences))
    if needs.subjects is not None and seen.subjects < needs.subjects:
        out.append(("trainer.pk.p", needs.subjects, f"{seen.subjects} training subjects", seen.subjects))
    if seen.longest is not None and seen.longest < needs.sequence_length:
        held = f"training walks of at most {seen.longest} frames"
        out.append(("dataset.sequence_length", needs.sequence_length, held, seen.longest))
    return out


def _paragraph(dataset_cfg: DictConfig, problems: list[tuple[str, Any, str, Any]]) -> ConfigError:
    key, value, _, _ = problems[0]
    held = "; ".join(f"{k}={v} needs more than its {what}" for k, v, what, _ in problems)
    fits = " ".join(f"{k}={fit}" for k, _, _, fit in problems)
    return ConfigError(
        key,
        value,
        f"a recipe the data of dataset '{dataset_cfg.name}' at {dataset_cfg.reader.root} can hold (counted from its "
        f"files before the pose cache is built): {held}",
        f"add {fits} to fit this data (or point paths.data_dir at a larger copy of the dataset)",
    )


def _unit_subject(reader: FolderReader, unit: str) -> int | None:
    """The subject id of a unit folder (pose pickles name theirs by the dataset's rule, the others by digits)."""
    name = PurePosixPath(unit).name
    if isinstance(reader, PosePklReader):
        return reader.subject_id(name, reader.unit_dir(unit))
    return int(name) if name.isdigit() else None


def _lengths_listed(reader: FolderReader) -> bool:
    """True when lengths come from the listing (free), False when each walk must be opened (budgeted)."""
    return isinstance(reader, OumvlpReader)


def _sequence_lengths(reader: FolderReader, unit: str) -> list[Callable[[], int | None]]:
    """One callable per sequence of ``unit`` giving its number of frames (None: unknown before the build)."""
    files = reader.unit_files(unit)
    if isinstance(reader, OumvlpReader):  # one JSON per frame, one folder per sequence
        per_folder = Counter(f.parent for f in files)
        return [lambda n=n: n for n in per_folder.values()]
    if isinstance(reader, PosePklReader):
        return [lambda f=f: len(load_pose_array(f, reader.num_joints)) for f in files]
    if isinstance(reader, PsyMoReader):
        return [lambda f=f: _psymo_frames(f) for f in files]
    return [lambda: None for _ in files]


def _psymo_frames(path: Path) -> int | None:
    """The frames of a PsyMo walk: its distinct ``image_id`` values (None when the file is not as expected: the
    build names the problem)."""
    try:
        data = load_json(path)
        return len({d["image_id"] for d in data})
    except (DatasetFormatError, TypeError, KeyError):
        return None
