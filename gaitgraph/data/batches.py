"""The training batches drawn from a split (random or P x K windows), resumable mid-epoch."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import train_window_indices
from gaitgraph.errors import ConfigError

SAMPLERS = ("random", "pk")


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
