"""Protocol split of a PoseSet: the subject lists a dataset config names (or its reader ships), disjoint by subject."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from hydra.utils import instantiate

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError

log = logging.getLogger(__name__)


def resolve_split(dataset_cfg: Any) -> dict[str, list[int]]:
    """The dataset's subject lists; a ``null`` list comes from the reader's own split file.

    OUMVLP-Pose ships its split as ID_list.csv (``OumvlpReader.split_subjects()``), GREW and Gait3D as a JSON
    file (``PosePklReader.split_subjects()``); a reader without such a file must get every list from the config.
    ``split.val_count: N`` with ``val_subjects: null`` moves the last N training subjects (in id order) to
    validation.
    """
    split = {k: v for k, v in dict(dataset_cfg.split).items() if k.endswith("_subjects")}
    n_val = int(dataset_cfg.split.get("val_count") or 0)
    missing = [k for k, v in split.items() if v is None and not (k == "val_subjects" and n_val)]
    resolved = {k: [] if v is None else v for k, v in split.items()}
    if missing:
        reader = instantiate(dataset_cfg.reader)
        if not hasattr(reader, "split_subjects"):
            raise ConfigError(
                f"dataset.split.{missing[0]}",
                None,
                "a list of subject ids (the reader of this dataset has no split file to take it from)",
            )
        shipped = reader.split_subjects()
        resolved.update({k: shipped.get(k.removesuffix("_subjects"), []) for k in missing})
    resolved = {k: sorted(int(s) for s in v) for k, v in resolved.items()}
    if n_val:
        _hold_out(resolved, n_val, split.get("val_subjects"))
    return resolved


def _hold_out(split: dict[str, list[int]], n_val: int, listed: Any) -> None:
    """Move the last ``n_val`` training subjects to ``val_subjects`` (in place)."""
    train = split.get("train_subjects", [])
    if listed is not None:
        raise ConfigError("dataset.split.val_count", n_val, "0 when dataset.split.val_subjects lists the subjects")
    if not 0 < n_val < len(train):
        raise ConfigError("dataset.split.val_count", n_val, f"between 1 and {len(train) - 1} (the training subjects)")
    split["train_subjects"], split["val_subjects"] = train[:-n_val], train[-n_val:]


def split_by_subjects(poses: PoseSet, split: Mapping[str, Sequence[int]]) -> dict[str, PoseSet]:
    """Partition ``poses`` into train/val/test by subject lists (``*_subjects`` keys, see :func:`resolve_split`).

    Raises if the lists overlap, since training on a test subject would void every result.
    """
    chosen = {key.removesuffix("_subjects"): {int(s) for s in subjects} for key, subjects in split.items()}
    names = list(chosen)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap = chosen[a] & chosen[b]
            if overlap:
                raise ConfigError(
                    f"dataset.split.{b}_subjects",
                    sorted(overlap)[:10],
                    f"subjects not in dataset.split.{a}_subjects (splits must be disjoint)",
                )
    subject = poses.meta["subject"].to_numpy()
    _name_absent(chosen, set(np.unique(subject).tolist()))
    return {name: poses.select(np.isin(subject, sorted(ids))) for name, ids in chosen.items()}


def _name_absent(chosen: Mapping[str, set[int]], present: set[int]) -> None:
    """One warning per split that lists subjects without a single sequence (their folder is empty, missing or
    was skipped, or every sequence was shorter than min_frames): they would drop out without a word."""
    for name, ids in chosen.items():
        absent = sorted(ids - present)
        if absent:
            more = f" and {len(absent) - 10} more" if len(absent) > 10 else ""
            log.warning(
                "dataset.split.%s_subjects lists %d of its %d subjects without any sequence in the data "
                "(folder empty, missing or skipped, or every sequence shorter than dataset.reader.min_frames): %s%s",
                name,
                len(absent),
                len(ids),
                ", ".join(str(s) for s in absent[:10]),
                more,
            )
