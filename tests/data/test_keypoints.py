"""The OpenPose-18 -> COCO-17 conversion carried by the keypoints layouts."""

from __future__ import annotations

import numpy as np
import pytest

from gaitgraph.skeletons import openpose18_to_coco17

from ..conftest import skeleton as _skeleton


def test_conversion_maps_every_openpose_joint_to_the_same_named_coco_joint():
    coco, openpose = _skeleton("coco17"), _skeleton("openpose")
    names = np.array(openpose.joints, dtype=object)[:, None].repeat(3, axis=1)  # [18, 3]
    converted = openpose18_to_coco17(names)
    assert list(converted[:, 0]) == coco.joints
    assert "neck" not in converted[:, 0]


def test_conversion_keeps_leading_axes_and_values():
    frames = np.random.default_rng(0).normal(size=(4, 7, 18, 3)).astype(np.float32)
    out = openpose18_to_coco17(frames)
    assert out.shape == (4, 7, 17, 3)
    np.testing.assert_array_equal(out[..., 5, :], frames[..., 5, :])  # left shoulder: OpenPose 5 -> COCO 5
    np.testing.assert_array_equal(out[..., 6, :], frames[..., 2, :])  # right shoulder: OpenPose 2 -> COCO 6


def test_conversion_rejects_other_joint_counts():
    with pytest.raises(ValueError, match="18 OpenPose joints"):
        openpose18_to_coco17(np.zeros((5, 17, 3)))
