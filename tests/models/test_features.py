import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.models.features import multi_input

CONF = CONF_DIR / "keypoints"


def _skeleton(name):
    return instantiate(OmegaConf.load(CONF / f"{name}.yaml"))


def _reference_gaitgraph2(x, sk):
    """Per-frame, per-joint transcription of the original MultiInput for one (T, V, 3) sequence."""
    T, V, C = x.shape
    out = torch.zeros(T, V, 3, C + 2)
    out[:, :, 0, :C] = x
    for v in range(V):
        out[:, v, 0, C:] = x[:, v, :2] - x[:, sk.center, :2]
    for t in range(T - 2):
        out[t, :, 1, :2] = x[t + 1, :, :2] - x[t, :, :2]
        out[t, :, 1, 3:] = x[t + 2, :, :2] - x[t, :, :2]
    out[:, :, 1, 3] = x[:, :, 2]
    for v in range(V):
        out[:, v, 2, :2] = x[:, v, :2] - x[:, sk.connect_joint[v], :2]
    length = 0
    for c in range(C - 1):
        length += torch.pow(out[:, :, 2, c], 2)
    length = torch.sqrt(length) + 0.0001
    for c in range(C - 1):
        out[:, :, 2, C + c] = torch.acos(out[:, :, 2, c] / length)
    out[:, :, 2, 3] = x[:, :, 2]
    return out


@pytest.mark.parametrize("layout", ["coco17", "openpose"])
def test_gaitgraph2_bit_exact(layout):
    sk = _skeleton(layout)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 13, sk.num_joints, 3, generator=g) * torch.tensor([320.0, 240.0, 1.0])
    got = multi_input(x, sk)
    assert got.shape == (4, 13, sk.num_joints, 3, 5)
    for n in range(4):
        assert torch.equal(got[n], _reference_gaitgraph2(x[n], sk))
    assert torch.equal(multi_input(x[0], sk), got[0])  # unbatched works too


def test_gaitgraph2_quirks_visible():
    sk = _skeleton("coco17")
    x = torch.rand(2, 6, 17, 3)
    f = multi_input(x, sk)
    assert torch.count_nonzero(f[..., 1, 2]) == 0 and torch.count_nonzero(f[..., 2, 2]) == 0
    assert torch.equal(f[..., 1, 3], x[..., 2]) and torch.equal(f[..., 2, 3], x[..., 2])
    assert torch.count_nonzero(f[:, -2:, :, 1, [0, 1, 4]]) == 0


def test_corrected_variant():
    sk = _skeleton("coco17")
    x = torch.rand(2, 6, 17, 3)
    f = multi_input(x, sk, "corrected")
    xy = x[..., :2]
    torch.testing.assert_close(f[:, :4, :, 1, 3:], xy[:, 2:] - xy[:, :-2])
    torch.testing.assert_close(f[:, :5, :, 1, :2], xy[:, 1:] - xy[:, :-1])
    assert torch.count_nonzero(f[:, 5, :, 1, :2]) == 0 and torch.count_nonzero(f[:, 4:, :, 1, 3:]) == 0
    for branch in range(3):
        assert torch.equal(f[..., branch, 2], x[..., 2])
    # a bone pointing straight along +x: angle to x axis 0, to y axis pi/2
    x = torch.zeros(1, 3, 17, 3)
    x[..., 1, 0] = 10.0  # left eye, parent nose at the origin
    f = multi_input(x, sk, "corrected")
    assert f[0, 0, 1, 2, 3].item() == pytest.approx(math.acos(10 / 10.0001), abs=1e-4)
    assert f[0, 0, 1, 2, 4].item() == pytest.approx(math.pi / 2, abs=1e-6)


def test_errors():
    sk = _skeleton("coco17")
    with pytest.raises(ValueError, match="features"):
        multi_input(torch.rand(1, 4, 17, 3), sk, "bogus")
    with pytest.raises(ValueError, match="coco17"):
        multi_input(torch.rand(1, 4, 18, 3), sk)
