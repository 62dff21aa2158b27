"""GaitGraph2 sequence windows and batch augmentations (docs/original-network.md#augmentations), pure and vectorised.

Windows are frame indices (relative to each sequence's first frame) so a dataset can gather them straight
from the contiguous PoseSet frames; augmentations are small transforms of a whole (N, L, V, 3) batch on its
device, applied in order by :class:`Compose` (the ``augmentation`` config group lists them).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError

FLIP_LR_MODES = ("swap", "mirror")
#: One augmentation step: ``(batch, generator) -> batch``.
Transform = Callable[[torch.Tensor, "torch.Generator | None"], torch.Tensor]


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


class Compose:
    """An augmentation pipeline: transforms applied in the given order to a batch (N, L, V, 3) of (x, y, conf).

    ``transforms`` is an ordered mapping name -> transform (a YAML mapping keeps its order, and a name lets one
    transform be changed, ``augmentation.transforms.joint_noise.amplitude=0.2``, or dropped,
    ``~augmentation.transforms.point_noise``), or a plain sequence. Each transform is a callable
    ``(x, generator) -> x`` on the batch's device; the input batch is never modified.
    """

    def __init__(self, transforms: Mapping[str, Transform | None] | Sequence[Transform] | None = None) -> None:
        items = transforms.values() if isinstance(transforms, Mapping) else (transforms or [])
        self.transforms = [t for t in items if t is not None]

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if x.dim() != 4 or x.shape[-1] != 3:
            raise ValueError(f"augmentation: expected a batch (N, L, V, 3), found {tuple(x.shape)}")
        out = x.clone()
        for transform in self.transforms:
            out = transform(out, generator)
        return out


def _rand(x: torch.Tensor, generator: torch.Generator | None, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=generator, device=x.device, dtype=x.dtype)


def _uniform(
    x: torch.Tensor, generator: torch.Generator | None, amplitude: torch.Tensor | float, *shape: int
) -> torch.Tensor:
    return (_rand(x, generator, *shape) * 2 - 1) * amplitude


def _chosen(x: torch.Tensor, generator: torch.Generator | None, p: float) -> torch.Tensor:
    """[N, 1, 1, 1] mask: which samples a transform of probability ``p`` applies to."""
    return (_rand(x, generator, len(x)) < p).view(len(x), 1, 1, 1)


def _probability(name: str, p: float) -> float:
    if not 0.0 <= float(p) <= 1.0:
        raise ConfigError(f"augmentation {name}.p", p, "a probability in [0, 1]")
    return float(p)


class FlipSequence:
    """Reverse the frame order of each sample with probability ``p`` (GaitGraph2's time flip)."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = _probability("FlipSequence", p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.where(_chosen(x, generator, self.p), x.flip(1), x) if self.p > 0 else x


class ShuffleSequence:
    """Put every sample's frames in a random order (GaitGraph2's frame-shuffle ablation)."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        n, length = x.shape[:2]
        order = _rand(x, generator, n, length).argsort(dim=1)
        return x.gather(1, order.view(n, length, 1, 1).expand_as(x))


class FlipLeftRight:
    """Swap left and right joints of each sample with probability ``p``.

    ``mode``: ``swap`` = the joint labels only (GaitGraph2); ``mirror`` = also mirror x about each frame's mean x.
    ``flip_idx``: the skeleton's left/right permutation (``${keypoints.flip_idx}`` in the configs).
    """

    def __init__(self, flip_idx: Sequence[int], p: float = 0.5, mode: str = "swap") -> None:
        if mode not in FLIP_LR_MODES:
            raise ConfigError("augmentation FlipLeftRight.mode", mode, f"one of {', '.join(FLIP_LR_MODES)}")
        self.flip_idx = torch.tensor([int(j) for j in flip_idx], dtype=torch.long)
        self.p = _probability("FlipLeftRight", p)
        self.mode = mode

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.p == 0:
            return x
        if x.shape[2] != len(self.flip_idx):
            raise ValueError(f"FlipLeftRight: {len(self.flip_idx)} joints in flip_idx, the batch has {x.shape[2]}")
        flipped = x[:, :, self.flip_idx.to(x.device)]
        if self.mode == "mirror":
            mirrored_x = 2 * flipped[..., :1].mean(dim=2, keepdim=True) - flipped[..., :1]
            flipped = torch.cat([mirrored_x, flipped[..., 1:]], dim=-1)
        return torch.where(_chosen(x, generator, self.p), flipped, x)


class JointNoise:
    """Shift each joint's x, y by a uniform offset in [-amplitude, amplitude], the same in every frame."""

    def __init__(self, amplitude: float = 0.1) -> None:
        self.amplitude = float(amplitude)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.amplitude > 0:
            n, _, v, _ = x.shape
            x[..., :2] += _uniform(x, generator, self.amplitude, n, 1, v, 2)
        return x


class PointNoise:
    """Add uniform noise in [-amplitude, amplitude] to every value (confidence too, then clamped to [0, 1])."""

    def __init__(self, amplitude: float = 0.05) -> None:
        self.amplitude = float(amplitude)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if self.amplitude > 0:
            x += _uniform(x, generator, self.amplitude, *x.shape)
            x[..., 2].clamp_(0.0, 1.0)
        return x


class RandomMove:
    """Move each sample as a whole by dx ~ U(-max_dx, max_dx), dy ~ U(-max_dy, max_dy) (the data's units)."""

    def __init__(self, max_dx: float = 3.0, max_dy: float = 1.0) -> None:
        self.amplitude = (float(max_dx), float(max_dy))

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if any(self.amplitude):
            amplitude = torch.tensor(self.amplitude, device=x.device, dtype=x.dtype)
            x[..., :2] += _uniform(x, generator, amplitude, len(x), 1, 1, 2)
        return x
