"""Input features of the FastPoseGait zoo on hand-computed poses."""

from __future__ import annotations

import math

import pytest
import torch

from gaitgraph.errors import ConfigError
from gaitgraph.models.features import FEATURES
from gaitgraph.models.zoo_features import gpgait_angles, rescale_center


def _poses(frames: int, joints: int) -> torch.Tensor:
    """(1, T, V, 3): joint v at (10 v + t, 100 + v + 2 t^2), confidence 0.5."""
    t = torch.arange(frames, dtype=torch.float64)[:, None]
    v = torch.arange(joints, dtype=torch.float64)[None, :]
    return torch.stack([10 * v + t, 100 + v + 2 * t**2, torch.full((frames, joints), 0.5, dtype=torch.float64)], -1)[
        None
    ]


def test_gaitgraph1_input_is_the_raw_poses(coco17):
    poses = _poses(4, 17)
    assert torch.equal(FEATURES["gaitgraph1"](poses, coco17), poses.unsqueeze(3))


@pytest.mark.parametrize(("layout", "center", "nose_parent"), [("coco17", 0, 5), ("openpose18", 1, 1)])
def test_gaittr_channels(request, layout, center, nose_parent):
    skeleton = request.getfixturevalue("coco17" if layout == "coco17" else "openpose18")
    poses = _poses(5, skeleton.num_joints)
    x = FEATURES["gaittr"](poses, skeleton)[0]  # (10, T, V)
    xy = poses[0, ..., :2].permute(2, 0, 1)  # (2, T, V)
    assert x.shape == (10, 5, skeleton.num_joints)
    assert torch.equal(x[0:2], xy)
    assert torch.equal(x[2:4], xy - xy[:, :, center : center + 1])
    # velocities: x moves +1 per frame, y by 2(2t+1) and 4(2t+2) (quadratic); zero in the last two frames
    t = torch.arange(3, dtype=torch.float64)
    assert torch.equal(x[4, :3], torch.ones(3, skeleton.num_joints, dtype=torch.float64))
    assert torch.equal(x[5, :3, 0], 2 * (2 * t + 1)) and torch.equal(x[7, :3, 0], 4 * (2 * t + 2))
    assert not x[4:8, 3:].any()
    # bones to FastPoseGait's parents: COCO-17's nose hangs from the left shoulder (5)
    assert torch.equal(x[8:10, :, 0], xy[:, :, 0] - xy[:, :, nose_parent])
    assert torch.equal(x[8:10, :, 7], xy[:, :, 7] - xy[:, :, 5 if layout == "coco17" else 6])


def test_rescale_center_height_225_around_the_shoulders():
    xy = torch.zeros(1, 1, 17, 2, dtype=torch.float64)
    xy[..., 1] = torch.linspace(10, 110, 17)  # height 100 -> scale 2.25
    xy[0, 0, 5], xy[0, 0, 6] = torch.tensor([40.0, 30.0]), torch.tensor([60.0, 50.0])
    out = rescale_center(xy)
    assert float(out[..., 1].max() - out[..., 1].min()) == pytest.approx(225.0)
    torch.testing.assert_close(out[0, 0, 5:7].mean(0), torch.zeros(2, dtype=torch.float64))
    torch.testing.assert_close(out[0, 0, 6] - out[0, 0, 5], torch.tensor([45.0, 45.0], dtype=torch.float64))


def test_gpgait_angles_hand_computed():
    xy = torch.zeros(1, 1, 17, 2, dtype=torch.float64)
    xy[0, 0, 5] = torch.tensor([0.0, 0.0])  # left shoulder
    xy[0, 0, 7] = torch.tensor([0.0, 10.0])  # left elbow straight below
    xy[0, 0, 9] = torch.tensor([10.0, 10.0])  # left wrist to the side: right angle at the elbow
    xy[0, 0, 11] = torch.tensor([0.0, -30.0])  # left hip opposite the elbow: a straight angle at the shoulder
    xy[0, 0, 6] = xy[0, 0, 8] = torch.tensor([5.0, 5.0])  # right shoulder on its elbow: degenerate
    angles = gpgait_angles(xy)[0, 0]  # joints 5..16
    assert float(angles[0]) == pytest.approx(0.0, abs=1e-7)  # shoulder (5, 7, 11): pi minus the straight angle
    assert float(angles[2]) == pytest.approx(math.pi / 2)  # elbow (7, 5, 9)
    assert float(angles[1]) == pytest.approx(math.pi)  # side of length 0
    # wrist edge angle (9, 7): against the point at the wrist's x and the elbow's y, i.e. the elbow itself
    assert float(angles[4]) == pytest.approx(math.pi)


def test_gpgait_input_channels_and_flat_frames(coco17):
    poses = _poses(3, 17).float()
    poses[0, 2, :, 1] = 50.0  # a flat frame: infinite scale, NaN -> 0 as the reference
    x = FEATURES["gpgait"](poses, coco17)[0]  # (5, T, V)
    assert x.shape == (5, 3, 17) and x.dtype == torch.float32
    assert not x[:, 2].any()
    xy = rescale_center(poses[..., :2].double())[0].permute(2, 0, 1).float()
    torch.testing.assert_close(x[0:2, :2], xy[:, :2])
    torch.testing.assert_close(x[2:4, :2, 0], xy[:, :2, 0] - xy[:, :2, 5])  # nose hangs from the left shoulder
    assert not x[4, :, :5].any() and x[4, :2, 5:].abs().sum() > 0  # angles of the non-head joints only


def test_layouts_the_families_do_not_take(openpose18):
    with pytest.raises(ConfigError, match="keypoints"):
        FEATURES["gpgait"](torch.zeros(1, 4, 18, 3), openpose18)
    with pytest.raises(ValueError, match=r"expected poses \(N, T, 18, 3\)"):
        FEATURES["gaittr"](torch.zeros(1, 4, 17, 3), openpose18)
