import math

import numpy as np
import pytest
import torch

from gaitgraph.data.transforms import (
    Compose,
    FlipLeftRight,
    FlipSequence,
    JointNoise,
    PointNoise,
    RandomMove,
    ShuffleSequence,
    center_window_indices,
    pad_indices,
    train_window_indices,
)
from gaitgraph.errors import ConfigError
from gaitgraph.utils import build

from ..conftest import compose_train, skeleton


@pytest.fixture(scope="module")
def coco17():
    return skeleton("coco17")


def _reference_pad(x: torch.Tensor, L: int) -> torch.Tensor:
    """The reference PadSequence on a tensor, transcribed."""
    T = x.size(0)
    if T > L:
        return x
    diff = L + 1 - T
    pre, pos = int(math.ceil(diff / 2)), int(diff / 2) + 1
    while pre > x.size(0) or pos > x.size(0):
        x = torch.cat([x.flip(0), x, x.flip(0)], 0)
    return torch.cat([x[1:pre].flip(0), x, x[-1 - pos : -1].flip(0)], 0)[:L]


@pytest.mark.parametrize("L", [1, 2, 30, 60])
def test_pad_indices_match_reference(L):
    for T in range(1, 2 * L + 3):
        idx = pad_indices(T, L)
        ref = _reference_pad(torch.arange(T), L).numpy()
        assert np.array_equal(idx, ref), (T, L)
        assert len(idx) == max(T, L)


def test_pad_indices_reflect_without_edge_repeat():
    assert pad_indices(5, 9).tolist() == [2, 1, 0, 1, 2, 3, 4, 3, 2]
    assert pad_indices(2, 7).tolist() == [0, 0, 1, 0, 0, 1, 1]  # the tripling quirk for very short T
    with pytest.raises(ValueError):
        pad_indices(0, 10)


def test_center_window():
    assert center_window_indices(100, 60).tolist() == list(range(20, 80))
    assert center_window_indices(61, 60).tolist() == list(range(0, 60))  # int(0.5) = 0
    assert center_window_indices(60, 60).tolist() == list(range(60))
    assert np.array_equal(center_window_indices(20, 60), pad_indices(20, 60))


def test_train_windows_exclusive_upper_bound_and_padding():
    rng = np.random.default_rng(0)
    lengths = np.array([62] * 2000 + [10, 60])
    win = train_window_indices(lengths, 60, rng)
    assert win.shape == (2002, 60)
    starts = win[:2000, 0]
    assert set(starts.tolist()) == {0, 1}  # start 2 (the last window) is never drawn
    assert (np.diff(win[:2000], axis=1) == 1).all()
    assert np.array_equal(win[2000], pad_indices(10, 60)) and np.array_equal(win[2001], np.arange(60))
    again = train_window_indices(lengths, 60, np.random.default_rng(0))
    assert np.array_equal(win, again)


def _batch(n=64, length=12, v=17):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, length, v, 3, generator=g)
    x[..., :2] *= 100
    return x


def test_none_config_is_identity_and_input_untouched():
    aug = build(compose_train(["augmentation=none"]).augmentation)
    x = _batch()
    y = aug(x)
    assert torch.equal(y, x) and y.data_ptr() != x.data_ptr()


def test_time_flip():
    x = _batch()
    y = Compose([FlipSequence(0.5)])(x, torch.Generator().manual_seed(0))
    flipped = torch.tensor([torch.equal(y[i], x[i].flip(0)) for i in range(len(x))])
    kept = torch.tensor([torch.equal(y[i], x[i]) for i in range(len(x))])
    assert (flipped ^ kept).all() and 10 < flipped.sum() < 54


def test_lr_swap_and_mirror(coco17):
    x = _batch()
    flip = torch.tensor(coco17.flip_idx)
    y = Compose([FlipLeftRight(coco17.flip_idx, p=1.0)])(x)
    assert torch.equal(y, x[:, :, flip])
    m = Compose([FlipLeftRight(coco17.flip_idx, p=1.0, mode="mirror")])(x)
    mean_x = x[..., 0].mean(dim=2, keepdim=True)
    torch.testing.assert_close(m[..., 0], (2 * mean_x - x[..., 0])[:, :, flip], rtol=0, atol=1e-4)
    assert torch.equal(m[..., 1:], x[:, :, flip, 1:])


def test_joint_noise_constant_over_time():
    x = _batch()
    d = Compose([JointNoise(0.1)])(x) - x
    assert torch.count_nonzero(d[..., 2]) == 0
    torch.testing.assert_close(d[:, 1:, :, :2], d[:, :1, :, :2].expand(-1, 11, -1, -1))
    assert d.abs().max() <= 0.1 + 1e-5 and d[:, 0, :, :2].std() > 0.04  # uniform in (-0.1, 0.1)


def test_point_noise_and_conf_clamp():
    x = _batch()
    x[..., 2] = torch.where(x[..., 2] > 0.5, torch.ones_like(x[..., 2]), torch.zeros_like(x[..., 2]))
    y = Compose([PointNoise(0.05)])(x)
    d = y - x
    assert d[..., :2].abs().max() <= 0.05 + 1e-5 and torch.count_nonzero(d[..., :2]) > 0.99 * d[..., :2].numel()
    assert y[..., 2].min() >= 0 and y[..., 2].max() <= 1
    assert (y[..., 2][x[..., 2] == 1] <= 1).all() and (y[..., 2][x[..., 2] == 1] < 1).any()


def test_random_move_is_global():
    x = _batch()
    d = Compose([RandomMove(3.0, 1.0)])(x) - x
    torch.testing.assert_close(d, d[:, :1, :1].expand_as(d))
    assert torch.count_nonzero(d[..., 2]) == 0
    assert d[..., 0].abs().max() <= 3 and d[..., 1].abs().max() <= 1 and d[:, 0, 0, 0].abs().max() > 1.5


def test_shuffle_is_a_permutation():
    x = _batch()
    y = Compose([ShuffleSequence()])(x)
    assert not torch.equal(y, x)
    assert torch.equal(y.sort(dim=1).values, x.sort(dim=1).values)


def test_gaitgraph2_pipeline_keeps_the_original_order_and_is_reproducible():
    cfg = compose_train([])
    assert list(cfg.augmentation.transforms) == [
        "flip_sequence",
        "flip_lr",
        "joint_noise",
        "point_noise",
        "random_move",
    ]
    aug = build(cfg.augmentation)
    assert [type(t) for t in aug.transforms] == [FlipSequence, FlipLeftRight, JointNoise, PointNoise, RandomMove]
    x = _batch()
    a = aug(x, torch.Generator().manual_seed(5))
    b = aug(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b) and not torch.equal(a, x)
    # Order matters: a move before the per-joint noise draws other numbers for each step.
    swapped = Compose([aug.transforms[0], aug.transforms[1], aug.transforms[4], aug.transforms[2], aug.transforms[3]])
    assert not torch.equal(swapped(x, torch.Generator().manual_seed(5)), a)


def test_pipeline_overrides_and_bad_values():
    mirror = compose_train(
        [
            "augmentation=mirror",
            "augmentation.transforms.joint_noise.amplitude=0.2",
            "~augmentation.transforms.point_noise",
        ]
    )
    aug = build(mirror.augmentation)
    assert [type(t) for t in aug.transforms] == [FlipSequence, FlipLeftRight, JointNoise, RandomMove]
    assert aug.transforms[1].mode == "mirror" and aug.transforms[2].amplitude == 0.2
    with pytest.raises(ConfigError, match="mode"):
        FlipLeftRight([0], mode="bogus")
    with pytest.raises(ConfigError, match=r"p=1\.5"):
        FlipSequence(1.5)
