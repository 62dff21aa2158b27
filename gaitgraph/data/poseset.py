"""The one in-memory layout every reader produces (docs/formats.md#poseset)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

#: Metadata columns, one row per sequence. ``view`` is a zero-padded string label ("000", "090",
#: "45_1") so that it sorts in camera order and works for every dataset alike.
META_COLUMNS: tuple[str, ...] = ("subject", "condition", "seq", "view", "n_frames", "source")
META_DTYPES: dict[str, str] = {
    "subject": "int64",
    "condition": "str",
    "seq": "int64",
    "view": "str",
    "n_frames": "int64",
    "source": "str",
}


@dataclass
class PoseSet:
    """Pose sequences stored contiguously.

    frames:  float32 [F, J, 3] = (x, y, confidence), all sequences back to back.
    offsets: int64 [S + 1]; sequence i is ``frames[offsets[i]:offsets[i + 1]]``.
    meta:    DataFrame with :data:`META_COLUMNS`, row i describes sequence i.
    """

    frames: np.ndarray
    offsets: np.ndarray
    meta: pd.DataFrame

    def __post_init__(self) -> None:
        self.frames = np.ascontiguousarray(self.frames, dtype=np.float32)
        self.offsets = np.asarray(self.offsets, dtype=np.int64)
        if self.frames.ndim != 3 or self.frames.shape[2] != 3:
            raise ValueError(f"frames must be [F, J, 3], got shape {self.frames.shape}")
        if len(self.offsets) != len(self.meta) + 1:
            raise ValueError(
                f"offsets has {len(self.offsets)} entries for {len(self.meta)} sequences "
                "(expected one more than the sequence count)"
            )
        if self.offsets[0] != 0 or self.offsets[-1] != len(self.frames):
            raise ValueError("offsets must start at 0 and end at the frame count")
        missing = [c for c in META_COLUMNS if c not in self.meta.columns]
        if missing:
            raise ValueError(f"meta lacks columns {missing}")
        extra = [c for c in self.meta.columns if c not in META_COLUMNS]
        self.meta = self.meta[list(META_COLUMNS) + extra].reset_index(drop=True).astype(META_DTYPES)

    def __len__(self) -> int:
        return len(self.meta)

    @property
    def num_joints(self) -> int:
        return int(self.frames.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def sequence(self, i: int) -> np.ndarray:
        """A view (not a copy) of sequence ``i``: [T, J, 3]."""
        return self.frames[self.offsets[i] : self.offsets[i + 1]]

    def select(self, mask: np.ndarray | Sequence[bool] | Sequence[int]) -> PoseSet:
        """A new PoseSet holding the chosen sequences (boolean mask or integer indices)."""
        idx = np.asarray(mask)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        lengths = self.lengths[idx]
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if len(idx):
            rows = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in idx])
        else:
            rows = np.zeros(0, dtype=np.int64)
        return PoseSet(self.frames[rows], offsets, self.meta.iloc[idx])

    @classmethod
    def from_sequences(
        cls, sequences: Iterable[np.ndarray], meta: pd.DataFrame | list[dict], num_joints: int | None = None
    ) -> PoseSet:
        """Build from a list of [T, J, 3] arrays and their metadata (``n_frames`` filled in).

        ``num_joints`` gives the joint count of an empty set (no sequence to take it from).
        """
        seqs = [np.asarray(s, dtype=np.float32) for s in sequences]
        meta = pd.DataFrame(meta) if len(meta) else pd.DataFrame(columns=list(META_COLUMNS))
        meta = meta.copy()
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
        meta["n_frames"] = lengths
        offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        joints = seqs[0].shape[1] if seqs else (num_joints or 0)
        frames = np.concatenate(seqs) if seqs else np.zeros((0, joints, 3), np.float32)
        return cls(frames, offsets, meta)

    @classmethod
    def concat(cls, parts: Sequence[PoseSet]) -> PoseSet:
        """Join several PoseSets, in order."""
        lengths = np.concatenate([p.lengths for p in parts])
        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(
            np.concatenate([p.frames for p in parts]),
            offsets,
            pd.concat([p.meta for p in parts], ignore_index=True),
        )
