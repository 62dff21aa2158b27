"""GaitGraph2 sequence windows and batch augmentations (docs/original-network.md#augmentations), pure and vectorised.

Windows are frame indices (relative to each sequence's first frame) so a dataset can gather them straight
from the contiguous PoseSet frames; augmentations run on a whole (N, L, V, 3) batch on its device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from gaitgraph.data.poseset import PoseSet
from gaitgraph.skeletons import Skeleton

FLIP_LR_MODES = ("swap", "mirror")


def pad_indices(T: int, L: int) -> np.ndarray:
    """Frame indices of GaitGraph2's ``PadSequence(L)`` on a T-frame sequence.

    T > L: unchanged (all T frames). Otherwise reflect padding that does not repeat the edge frame, to exactly
    L frames; sequences too short for one reflection are first tripled as (reversed, forward, reversed).
    """
    if T < 1:
        raise ValueError(f"pad_indices: a sequence needs at least 1 frame, found {T}")
    idx = np.arange(T)
    if T > L:
        return idx
    diff = L + 1 - T
    pre, pos = math.ceil(diff / 2), diff // 2 + 1
    while pre > len(idx) or pos > len(idx):
        idx = np.concatenate([idx[::-1], idx, idx[::-1]])
    return np.concatenate([idx[1:pre][::-1], idx, idx[-1 - pos : -1][::-1]])[:L]


def center_window_indices(T: int, L: int) -> np.ndarray:
    """[L] test-time window: ``PadSequence(L)`` then ``SelectSequenceCenter(L)`` (start = int(T'/2 - L/2))."""
    idx = pad_indices(T, L)
    start = int(len(idx) / 2 - L / 2)
    return idx[start : start + L]


def center_window_rows(lengths: np.ndarray, L: int) -> np.ndarray:
    """[N, L] test-time window of each of N sequences of ``lengths`` (see :func:`center_window_indices`)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.empty((len(lengths), L), dtype=np.int64)
    for T in np.unique(lengths):  # one index computation per distinct length
        rows[lengths == T] = center_window_indices(int(T), L)
    return rows


def center_windows(poses: PoseSet, idx: np.ndarray, sequence_length: int) -> np.ndarray:
    """[N, L, J, 3] test-time windows of sequences ``idx``: reflect-pad to L, then the centre L frames."""
    idx = np.asarray(idx, dtype=np.int64)
    rows = center_window_rows(poses.lengths[idx], sequence_length)
    return poses.frames[poses.offsets[idx][:, None] + rows]


def train_window_indices(lengths: np.ndarray, L: int, rng: np.random.Generator) -> np.ndarray:
    """[N, L] training windows: ``PadSequence(L)`` then ``RandomSelectSequence(L)``.

    As the reference, the start is drawn from [0, T-L) (upper bound exclusive: the last window of a sequence
    is never picked). The reference time-flips between padding and selection; ``BatchAugment`` flips the
    selected window instead, which only moves that never-picked window to the start for flipped samples.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or (lengths < 1).any():
        raise ValueError(f"train_window_indices: expected positive lengths [N], found {lengths!r}")
    out = np.empty((len(lengths), L), dtype=np.int64)
    long = lengths > L
    starts = rng.integers(0, lengths[long] - L) if long.any() else np.empty(0, dtype=np.int64)
    out[long] = starts[:, None] + np.arange(L)
    for T in np.unique(lengths[~long]):
        out[lengths == T] = pad_indices(int(T), L)
    return out


class BatchAugment:
    """GaitGraph2's training augmentations on a batch (N, L, V, 3) of (x, y, conf), per-sample random choices.

    Order as the reference: time flip (p), frame shuffle (ablation), left/right flip (p), uniform joint noise
    (per joint, constant over time, x/y), uniform point noise (every value, then conf clamped to [0, 1]), random
    global move (dx ~ U(-mx, mx), dy ~ U(-my, my)). Amplitudes are in the data's units (raw pixels in the
    reference). ``flip_lr_mode``: ``swap`` = left/right joint labels only (reference); ``mirror`` = also mirror x
    about each frame's mean x. Returns a new tensor; the input is never modified.
    """

    def __init__(
        self,
        skeleton: Skeleton,
        flip_sequence_p: float = 0.5,
        flip_lr_p: float = 0.5,
        flip_lr_mode: str = "swap",
        joint_noise: float = 0.1,
        point_noise: float = 0.05,
        random_move: Sequence[float] = (3.0, 1.0),
        shuffle_sequence: bool = False,
    ):
        if flip_lr_mode not in FLIP_LR_MODES:
            raise ValueError(f"augmentation.flip_lr_mode: expected one of {FLIP_LR_MODES}, found {flip_lr_mode!r}")
        move = [float(m) for m in random_move]
        if len(move) != 2:
            raise ValueError(f"augmentation.random_move: expected [max_dx, max_dy], found {list(random_move)}")
        self.flip_idx = torch.tensor(skeleton.flip_idx, dtype=torch.long)
        self.flip_sequence_p = float(flip_sequence_p)
        self.flip_lr_p = float(flip_lr_p)
        self.flip_lr_mode = flip_lr_mode
        self.joint_noise = float(joint_noise)
        self.point_noise = float(point_noise)
        self.random_move = move
        self.shuffle_sequence = bool(shuffle_sequence)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-1] != 3 or x.shape[2] != len(self.flip_idx):
            raise ValueError(f"BatchAugment: expected (N, L, {len(self.flip_idx)}, 3), found {tuple(x.shape)}")
        n, length, v, _ = x.shape

        def rand(*shape: int) -> torch.Tensor:
            return torch.rand(*shape, generator=generator, device=x.device, dtype=x.dtype)

        def uniform(amplitude: torch.Tensor | float, *shape: int) -> torch.Tensor:
            return (rand(*shape) * 2 - 1) * amplitude

        def chosen(p: float) -> torch.Tensor:
            return (rand(n) < p).view(n, 1, 1, 1)

        out = x.clone()
        if self.flip_sequence_p > 0:
            out = torch.where(chosen(self.flip_sequence_p), out.flip(1), out)
        if self.shuffle_sequence:
            order = rand(n, length).argsort(dim=1)
            out = out.gather(1, order.view(n, length, 1, 1).expand_as(out))
        if self.flip_lr_p > 0:
            flipped = out[:, :, self.flip_idx.to(x.device)]
            if self.flip_lr_mode == "mirror":
                mirrored_x = 2 * flipped[..., :1].mean(dim=2, keepdim=True) - flipped[..., :1]
                flipped = torch.cat([mirrored_x, flipped[..., 1:]], dim=-1)
            out = torch.where(chosen(self.flip_lr_p), flipped, out)
        if self.joint_noise > 0:
            out[..., :2] += uniform(self.joint_noise, n, 1, v, 2)
        if self.point_noise > 0:
            out += uniform(self.point_noise, n, length, v, 3)
            out[..., 2].clamp_(0.0, 1.0)
        if any(self.random_move):
            amplitude = torch.tensor(self.random_move, device=x.device, dtype=x.dtype)
            out[..., :2] += uniform(amplitude, n, 1, 1, 2)
        return out
