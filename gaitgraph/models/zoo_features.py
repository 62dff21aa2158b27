"""Input features of the FastPoseGait model zoo (GaitGraph1, GaitTR, GPGait): pure functions of raw pixel poses.

Each reproduces the evaluation transform of its FastPoseGait (commit 94da9c8) config, on a batch instead of one
sequence. The zoo keeps FastPoseGait's own bone parents, which differ from GaitGraph2's for COCO-17: the nose's
parent is the left shoulder (5), not the nose itself. FastPoseGait's 18-joint "alphapose"/"openpose" format is
the OpenPose-18 order of :data:`gaitgraph.skeletons.OPENPOSE18_JOINTS` (OUMVLP-Pose JSON order, no reordering),
so both layouts are used as they come.
"""

from __future__ import annotations

import math

import torch

from gaitgraph.errors import ConfigError
from gaitgraph.models.features import register_features
from gaitgraph.skeletons import Skeleton

#: layout -> (centre joint, bone parent of each joint), FastPoseGait's tables.
LAYOUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "coco17": (0, (5, 0, 0, 1, 2, 0, 0, 5, 6, 7, 8, 5, 6, 11, 12, 13, 14)),
    "openpose18": (1, (1, 1, 1, 2, 3, 1, 5, 6, 2, 8, 9, 5, 11, 12, 0, 0, 14, 15)),
}
#: GPGait's joint angles of the 12 non-head COCO-17 joints (5..16): (centre, a, b) is the inner angle at the
#: centre between a and b; (centre, a) the angle between the bone to a and the vertical through the centre.
GPGAIT_ANGLES: tuple[tuple[int, ...], ...] = (
    (5, 7, 11),
    (6, 8, 12),
    (7, 5, 9),
    (8, 10, 6),
    (9, 7),
    (10, 8),
    (11, 5, 13),
    (12, 6, 14),
    (13, 11, 15),
    (14, 12, 16),
    (15, 13),
    (16, 14),
)
#: GPGait's RescaleCenter: every frame scaled to this height (pixels) and centred on the shoulder midpoint.
GPGAIT_HEIGHT = 225.0
GPGAIT_SHOULDERS = (5, 6)


def require_layout(skeleton: Skeleton, layouts: tuple[str, ...], model: str) -> None:
    """Raise a ConfigError naming ``keypoints`` when ``skeleton`` is not one of ``layouts`` (with its joint count)."""
    sizes = {"coco17": 17, "openpose18": 18}
    if skeleton.layout not in layouts or skeleton.num_joints != sizes[skeleton.layout]:
        wanted = " or ".join(f"{name} ({sizes[name]} joints)" for name in layouts)
        raise ConfigError(
            "keypoints",
            f"{skeleton.layout} ({skeleton.num_joints} joints)",
            f"{wanted} for {model}",
            hint="pick keypoints=coco17 (CASIA-B), or keypoints=openpose|alphapose with a *_oumvlp model option",
        )


def _check(poses: torch.Tensor, skeleton: Skeleton) -> None:
    if poses.dim() != 4 or poses.shape[-1] != 3 or poses.shape[2] != skeleton.num_joints:
        raise ValueError(
            f"expected poses (N, T, {skeleton.num_joints}, 3) of layout '{skeleton.layout}', found {tuple(poses.shape)}"
        )


@register_features("gaitgraph1")
def gaitgraph1_input(poses: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """GaitGraph1: the raw (x, y, confidence) poses as one input branch, (N, T, V, 1, 3)."""
    require_layout(skeleton, tuple(LAYOUTS), "GaitGraph1")
    _check(poses, skeleton)
    return poses.unsqueeze(3)


@register_features("gaittr")
def gaittr_input(poses: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """GaitTR's 10 channels (confidence dropped), (N, 10, T, V).

    Channels: joint (x, y); joint minus the centre joint; velocity p[t+1]-p[t]; velocity p[t+2]-p[t] (both zero
    in the last two frames); bone p[v]-p[parent(v)].
    """
    require_layout(skeleton, tuple(LAYOUTS), "GaitTR")
    _check(poses, skeleton)
    center, parents = LAYOUTS[skeleton.layout]
    xy = poses[..., :2]
    n, t = xy.shape[:2]
    out = xy.new_zeros(n, t, xy.shape[2], 5, 2)
    out[..., 0, :] = xy
    out[..., 1, :] = xy - xy[:, :, center : center + 1]
    if t > 2:
        out[:, : t - 2, :, 2] = xy[:, 1 : t - 1] - xy[:, : t - 2]
        out[:, : t - 2, :, 3] = xy[:, 2:] - xy[:, : t - 2]
    out[..., 4, :] = xy - xy[:, :, list(parents)]
    return out.flatten(3).permute(0, 3, 1, 2)


def rescale_center(poses: torch.Tensor) -> torch.Tensor:
    """GPGait's RescaleCenter on COCO-17 xy (N, T, V, 2): each frame scaled to height 225 (its joints' y-range,
    all joints counted) and shifted so the shoulder midpoint is the origin. A flat frame gives inf/NaN, as there."""
    y = poses[..., 1]
    scale = GPGAIT_HEIGHT / (y.amax(dim=2) - y.amin(dim=2))
    xy = poses * scale[..., None, None]
    return xy - xy[:, :, list(GPGAIT_SHOULDERS)].mean(dim=2, keepdim=True)


def _cos_law_angle(center: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """pi minus the angle at ``center`` of the triangle (center, a, b) by the law of cosines; pi if a side is 0."""
    side1 = torch.linalg.vector_norm(center - a, dim=-1)
    side2 = torch.linalg.vector_norm(center - b, dim=-1)
    side3 = torch.linalg.vector_norm(a - b, dim=-1)
    denominator = side1 * side2
    degenerate = denominator == 0
    cos = (side1 * side1 + side2 * side2 - side3 * side3) / (2 * torch.where(degenerate, 1.0, denominator))
    angle = math.pi - torch.arccos(cos.clamp(-1.0, 1.0))
    return torch.where(degenerate, math.pi, angle)


def gpgait_angles(xy: torch.Tensor) -> torch.Tensor:
    """GPGait's angle of each of the 12 non-head COCO-17 joints, (N, T, 12) from xy (N, T, 17, 2)."""
    angles = []
    for joints in GPGAIT_ANGLES:
        center, a = xy[:, :, joints[0]], xy[:, :, joints[1]]
        # an edge angle measures against the point below/above the centre at a's height
        b = xy[:, :, joints[2]] if len(joints) == 3 else torch.stack([center[..., 0], a[..., 1]], dim=-1)
        angles.append(_cos_law_angle(center, a, b))
    return torch.stack(angles, dim=-1)


@register_features("gpgait")
def gpgait_input(poses: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """GPGait's human-oriented descriptor after RescaleCenter, (N, 5, T, 17).

    Channels: joint (x, y); bone (x, y) to FastPoseGait's COCO-17 parent; the joint angle (head joints 0-4 hold
    0: the network never reads them). NaN (from a flat frame) becomes 0, as there. Computed in float64 and
    returned in the poses' dtype, as the reference (numpy float64, then cast): an arccos near a straight limb
    would lose ~1e-4 rad in float32.
    """
    require_layout(skeleton, ("coco17",), "GPGait")
    _check(poses, skeleton)
    xy = rescale_center(poses[..., :2].double())
    bone = xy - xy[:, :, list(LAYOUTS["coco17"][1])]
    angle = torch.zeros_like(xy[..., 0])
    angle[:, :, 5:] = gpgait_angles(xy)
    out = torch.cat([xy, bone, angle.unsqueeze(-1)], dim=-1)
    return torch.nan_to_num(out).to(poses.dtype).permute(0, 3, 1, 2)
