"""Seeded weights and walking poses shared by the FastPoseGait recorder (tests/models/data/record_fastposegait.py)
and the parity test: both sides rebuild the same tensors from a seed instead of storing megabytes of weights."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

#: Joint positions of a standing walker (x right, y down, pixels relative to the hip midpoint), by joint name.
STANDING = {
    "nose": (2, -130),
    "neck": (0, -110),
    "left_eye": (5, -134),
    "right_eye": (-1, -134),
    "left_ear": (8, -130),
    "right_ear": (-6, -130),
    "left_shoulder": (14, -108),
    "right_shoulder": (-14, -108),
    "left_elbow": (17, -78),
    "right_elbow": (-17, -78),
    "left_wrist": (18, -50),
    "right_wrist": (-18, -50),
    "left_hip": (9, 0),
    "right_hip": (-9, 0),
    "left_knee": (10, 42),
    "right_knee": (-10, 42),
    "left_ankle": (10, 84),
    "right_ankle": (-10, 84),
}
#: Joints that swing forward and back while walking, with their phase (left and right in antiphase).
SWING = {
    "left_wrist": 1,
    "left_elbow": 0.5,
    "right_ankle": 1,
    "right_knee": 0.5,
    "right_wrist": -1,
    "right_elbow": -0.5,
    "left_ankle": -1,
    "left_knee": -0.5,
}


def walking_poses(joints: Sequence[str], n: int, t: int, seed: int) -> np.ndarray:
    """float32 (n, t, V, 3) raw pixel poses (x, y, confidence): walkers crossing a 320x240 frame."""
    rng = np.random.default_rng(seed)
    base = np.array([STANDING[j] for j in joints], dtype=np.float64)
    swing = np.array([SWING.get(j, 0.0) for j in joints])
    out = np.empty((n, t, len(joints), 3))
    for i in range(n):
        scale = rng.uniform(0.8, 1.2)
        phase = 2 * np.pi * (np.arange(t) / rng.uniform(18, 26) + rng.uniform())
        hip = np.stack([rng.uniform(60, 100) + rng.uniform(2, 4) * np.arange(t), np.full(t, rng.uniform(130, 150))], 1)
        xy = base[None] * scale + hip[:, None]
        xy[..., 0] += 20 * scale * swing[None] * np.sin(phase)[:, None]
        out[i, ..., :2] = xy + rng.normal(0, 1.5, xy.shape)
        out[i, ..., 2] = rng.uniform(0.4, 1.0, (t, len(joints)))
    return out.astype(np.float32)


def seeded_state_dict(listing: Sequence[tuple[str, Sequence[int]]], seed: int) -> dict[str, torch.Tensor]:
    """Trained-looking float64 values for every (name, shape) entry of a state_dict, in order, from one seed.

    Weights ~ N(0, 1/fan_in), biases ~ N(0, 0.1), BatchNorm scales and running variances in [0.5, 1.5],
    running means ~ N(0, 0.1); GPGait's ``PA`` ~ N(0, 0.05), ResGCN's ``edge`` in [0.5, 1.5]. Graph buffers
    (names ending in ``.A``) are left out: the caller keeps the model's own.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in listing:
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "A":
            continue
        if leaf == "num_batches_tracked":
            out[name] = torch.tensor(0)
            continue
        if leaf in ("running_var", "edge") or (leaf == "weight" and len(shape) == 1):
            value = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("running_mean", "bias"):
            value = rng.normal(0, 0.1, shape)
        elif leaf == "PA":
            value = rng.normal(0, 0.05, shape)
        else:  # conv / linear weights, per-part matrices [parts, in, out]
            fan_in = shape[1] if leaf == "fc_bin" else int(np.prod(shape[1:]))
            value = rng.normal(0, fan_in**-0.5, shape)
        out[name] = torch.from_numpy(np.asarray(value, dtype=np.float64))
    return out
