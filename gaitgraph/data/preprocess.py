"""Pure preprocessing of a PoseSet before it is cached (joint-layout conversion, normalisation)."""

from __future__ import annotations

import numpy as np

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton

#: Torso length after ``center_scale``: about the torso of a walker in CASIA-B's 320x240 frames, so
#: GaitGraph2's augmentation amplitudes (given in pixels) keep their meaning on normalised data.
TORSO_UNITS = 40.0

#: The values of ``dataset.preprocess.normalize``.
NORMALIZATIONS = ("none", "center_scale")


def convert_layout(poses: PoseSet, skeleton: Skeleton) -> PoseSet:
    """``poses`` in the skeleton's joint order (a copy when ``skeleton.convert_from`` is set)."""
    if skeleton.convert_from is None:
        return poses
    return PoseSet(skeleton.convert(poses.frames), poses.offsets.copy(), poses.meta.copy())


def normalize(poses: PoseSet, skeleton: Skeleton, method: str = "none") -> PoseSet:
    """Return a normalised copy of ``poses``.

    ``none``: the source's pixel coordinates (GaitGraph2 feeds raw pixels to the model).
    ``center_scale``: each frame translated so the hip midpoint is the origin, and each sequence
    scaled so its median torso length (shoulder midpoint to hip midpoint) is :data:`TORSO_UNITS`;
    removes the camera distance and position while keeping the pose's shape and its motion.
    """
    if method == "none":
        return poses
    if method != "center_scale":
        raise ConfigError("dataset.preprocess.normalize", method, f"one of {', '.join(NORMALIZATIONS)}")
    xy = poses.frames[..., :2]
    hip = xy[:, skeleton.hips].mean(axis=1)
    shoulder = xy[:, skeleton.shoulders].mean(axis=1)
    torso = np.linalg.norm(shoulder - hip, axis=1)
    seq_id = np.repeat(np.arange(len(poses)), poses.lengths)
    scale = np.ones(len(poses), np.float32)
    for i in range(len(poses)):
        med = np.median(torso[poses.offsets[i] : poses.offsets[i + 1]]) if poses.lengths[i] else 0.0
        scale[i] = TORSO_UNITS / med if med > 1e-6 else 1.0
    frames = poses.frames.copy()
    frames[..., :2] = (xy - hip[:, None, :]) * scale[seq_id][:, None, None]
    return PoseSet(frames, poses.offsets.copy(), poses.meta.copy())
