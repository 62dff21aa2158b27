"""Protocol split of a PoseSet and the training batches drawn from it."""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import train_window_indices


def split_by_subjects(poses: PoseSet, split: Mapping[str, Sequence[int] | None]) -> dict[str, PoseSet]:
    """Partition ``poses`` into train/val/test by subject lists (``*_subjects`` keys of the config).

    Raises if the lists overlap, since training on a test subject would void every result.
    """
    chosen: dict[str, set[int]] = {}
    for key, subjects in split.items():
        if not key.endswith("_subjects") or subjects is None:
            continue
        chosen[key.removesuffix("_subjects")] = {int(s) for s in subjects}
    names = list(chosen)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            overlap = chosen[a] & chosen[b]
            if overlap:
                raise ValueError(f"split: subjects {sorted(overlap)[:10]} are in both '{a}' and '{b}'")
    subject = poses.meta["subject"].to_numpy()
    return {name: poses.select(np.isin(subject, sorted(ids))) for name, ids in chosen.items()}


class WindowBatches:
    """Random fixed-length windows of the training sequences, one batch at a time.

    Each epoch shuffles the sequences (the reference's plain random batches); a batch is gathered
    from the contiguous frames array with one fancy index, so the data side costs next to nothing.
    """

    def __init__(
        self,
        poses: PoseSet,
        sequence_length: int,
        batch_size: int,
        seed: int,
        drop_last: bool = False,
    ) -> None:
        self.poses = poses
        self.sequence_length = sequence_length
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.rng = np.random.default_rng(seed)
        self.frames = torch.from_numpy(poses.frames)
        self.labels = torch.tensor(poses.meta["subject"].to_numpy(), dtype=torch.int64)

    def __len__(self) -> int:
        n = len(self.poses)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = self.rng.permutation(len(self.poses))
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.batch(idx)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows [N, L, V, 3] and subject labels [N] of the sequences ``idx``."""
        window = train_window_indices(self.poses.lengths[idx], self.sequence_length, self.rng)
        rows = torch.from_numpy(self.poses.offsets[idx][:, None] + window)
        return self.frames[rows], self.labels[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]
