"""Protocol split of a PoseSet and the training batches drawn from it (random or P x K), resumable mid-epoch."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from hydra.utils import instantiate

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import train_window_indices
from gaitgraph.errors import ConfigError

log = logging.getLogger(__name__)

SAMPLERS = ("random", "pk")


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


def random_plan(n: int, batch_size: int, drop_last: bool, rng: np.random.Generator) -> list[np.ndarray]:
    """The reference's plain random batches: one shuffled pass over ``n`` sequences, cut into batches."""
    order = rng.permutation(n)
    n_batches = n // batch_size if drop_last else -(-n // batch_size)
    return [order[b * batch_size : (b + 1) * batch_size] for b in range(n_batches)]


def pk_plan(labels: np.ndarray, p: int, k: int, n_batches: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``n_batches`` batches of P subjects x K sequences each (subject-major order).

    Subjects are taken from shuffled passes over all subjects, so every subject comes up equally often; a
    subject's K sequences are drawn without replacement, or with replacement when it has fewer than K.
    """
    subjects, inverse = np.unique(labels, return_inverse=True)
    if p > len(subjects):
        raise ConfigError("trainer.pk.p", p, f"at most {len(subjects)}, the number of training subjects")
    if p < 1 or k < 1:
        raise ConfigError("trainer.pk", {"p": p, "k": k}, "p >= 1 and k >= 1")
    members = [np.flatnonzero(inverse == s) for s in range(len(subjects))]
    passes = -(-n_batches * p // len(subjects))
    queue = np.concatenate([rng.permutation(len(subjects)) for _ in range(passes)])
    plan = []
    for b in range(n_batches):
        chosen = queue[b * p : (b + 1) * p]
        plan.append(np.concatenate([rng.choice(members[s], size=k, replace=len(members[s]) < k) for s in chosen]))
    return plan


def _random_batch(batch_size: int, n: int, drop_last: bool) -> int:
    """``trainer.batch_size`` for a random epoch over ``n`` training sequences. A batch above ``n`` is a config
    error, with or without ``drop_last``: drawing a smaller batch than the recipe names would change the run without
    a word (and the memory estimate would be told a batch that is never drawn)."""
    if batch_size <= n:
        return batch_size
    dropped = f" (with trainer.drop_last=true no batch of {batch_size} can be filled)" if drop_last else ""
    raise ConfigError(
        "trainer.batch_size",
        batch_size,
        f"at most {n}, the sequences of the training split{dropped}",
        f"set trainer.batch_size={n} or lower (a whole-split batch), or train on more data",
    )


class WindowBatches:
    """Random fixed-length windows of the training sequences, one GLOBAL batch at a time.

    ``sampler="random"``: each epoch shuffles the sequences (the reference's plain random batches);
    ``sampler="pk"``: P subjects x K sequences per batch, as many batches as a random epoch would have.
    A batch is gathered from the contiguous frames array with one fancy index. Every DDP rank draws the same
    plan from the same seed and slices its part later (``gaitgraph.engine.distributed.shard``).

    Resumable mid-epoch: an epoch's plan (batch order and windows) is drawn at its start from ``rng``; the
    state holds the generator state from before that draw plus the number of batches handed out, so a resumed
    run redraws the identical plan and skips the batches already trained on.

    ``limit``: at most this many batches per epoch (the rest of the plan is skipped); ``fixed``: every epoch
    repeats the first epoch's plan and windows (the same few batches, to overfit them on purpose).
    """

    def __init__(
        self,
        poses: PoseSet,
        sequence_length: int,
        batch_size: int,
        seed: int,
        drop_last: bool = False,
        sampler: str = "random",
        pk: tuple[int, int] | None = None,
        limit: int | None = None,
        fixed: bool = False,
    ) -> None:
        if sampler not in SAMPLERS:
            raise ConfigError("trainer.sampler", sampler, f"one of {', '.join(SAMPLERS)}")
        if sampler == "pk" and pk is None:
            raise ConfigError("trainer.pk", None, "p and k (subjects and sequences per batch) for trainer.sampler=pk")
        self.poses = poses
        self.sequence_length = sequence_length
        self.batch_size = _random_batch(batch_size, len(poses), drop_last) if sampler == "random" else pk[0] * pk[1]
        self.drop_last = drop_last
        self.sampler = sampler
        self.pk = pk
        self.limit = limit
        self.fixed = fixed
        self.rng = np.random.default_rng(seed)
        self._first_state = self.rng.bit_generator.state
        self.frames = torch.from_numpy(poses.frames)
        self.subjects = poses.meta["subject"].to_numpy()
        # Class indices 0..n-1 in subject order: what a classification head (cross-entropy) expects.
        self.labels = torch.from_numpy(np.unique(self.subjects, return_inverse=True)[1].astype(np.int64))
        self._epoch_start: dict[str, Any] | None = None
        self.position = 0  # batches of the current epoch already handed out

    def __len__(self) -> int:
        n = len(self.poses)
        batches = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return batches if self.limit is None else min(batches, self.limit)

    @property
    def in_epoch(self) -> bool:
        """True between the first batch of an epoch and its end (a checkpoint here is mid-epoch)."""
        return self._epoch_start is not None and 0 < self.position < len(self)

    def plan(self) -> list[np.ndarray]:
        """Draw one epoch's sequence indices per batch from ``rng``."""
        if self.sampler == "random":
            return random_plan(len(self.poses), self.batch_size, self.drop_last, self.rng)[: len(self)]
        return pk_plan(self.subjects, self.pk[0], self.pk[1], len(self), self.rng)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.in_epoch:
            self.rng.bit_generator.state = self._epoch_start  # resume: redraw the same plan, skip what was done
        else:
            if self.fixed:
                self.rng.bit_generator.state = self._first_state
            self._epoch_start, self.position = self.rng.bit_generator.state, 0
        plan = self.plan()
        flat = np.concatenate(plan)
        windows = train_window_indices(self.poses.lengths[flat], self.sequence_length, self.rng)
        bounds = np.cumsum([0] + [len(idx) for idx in plan])
        while self.position < len(plan):
            b = self.position
            self.position += 1
            idx = plan[b]
            rows = torch.from_numpy(self.poses.offsets[idx][:, None] + windows[bounds[b] : bounds[b + 1]])
            yield self.frames[rows], self.labels[idx]
        self._epoch_start = None

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state, "epoch_start": self._epoch_start, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
        self._epoch_start = state.get("epoch_start")
        self.position = int(state.get("position", 0))
