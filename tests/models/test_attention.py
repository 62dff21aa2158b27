"""The six ResGCN v1 attention layers: original parameter names and shapes, weights and outputs by direct formulas."""

import dataclasses

import pytest
import torch
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.errors import ConfigError
from gaitgraph.models import build_model
from gaitgraph.models.attention import (
    ChannelAttention,
    FrameAttention,
    JointAttention,
    PartAttention,
    PartConvAttention,
    PartShareAttention,
    build_attention,
    joint_parts,
)
from gaitgraph.models.resgcn import ResGCN

KINDS = ("part", "part_share", "part_conv", "channel", "frame", "joint")
CLASSES = {
    "part": PartAttention,
    "part_share": PartShareAttention,
    "part_conv": PartConvAttention,
    "channel": ChannelAttention,
    "frame": FrameAttention,
    "joint": JointAttention,
}
SKELETONS = ("coco17", "openpose18")
EPS = 1e-5  # BatchNorm2d default


@pytest.fixture(params=SKELETONS)
def skeleton(request):
    return request.getfixturevalue(request.param)


def _layer(kind: str, skeleton, channels: int = 16) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_attention(kind, channels, list(skeleton.parts.values()), skeleton.num_joints)


def _x(skeleton, n: int = 3, channels: int = 16, t: int = 11) -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(n, channels, t, skeleton.num_joints).contiguous(memory_format=torch.channels_last)


def _first_part(skeleton) -> list[int]:
    """Index of the first part (in config order) that lists each joint, computed from the skeleton directly."""
    parts = list(skeleton.parts.values())
    return [next(p for p, joints in enumerate(parts) if v in joints) for v in range(skeleton.num_joints)]


def _bn(prefix: str, c: int) -> list[tuple[str, tuple[int, ...]]]:
    return [
        (f"{prefix}.weight", (c,)),
        (f"{prefix}.bias", (c,)),
        (f"{prefix}.running_mean", (c,)),
        (f"{prefix}.running_var", (c,)),
        (f"{prefix}.num_batches_tracked", ()),
    ]


# ResGCN v1 attentions.py state_dict of main_stream.0 (128 channels, 5 parts), in registration order.
_PART_STEM = [("part_pool.0.weight", (32, 128, 1, 1)), ("part_pool.0.bias", (32,)), *_bn("part_pool.1", 32)]
_PART_FCN = [
    ("fcn.0.weight", (32, 32, 1, 1)),
    ("fcn.0.bias", (32,)),
    *_bn("fcn.1", 32),
    ("fcn.3.weight", (640, 32, 1, 1)),
    ("fcn.3.bias", (640,)),
]
EXPECTED_KEYS = {
    "part": [
        ("fcn.1.weight", (32, 128, 1, 1)),
        ("fcn.1.bias", (32,)),
        *_bn("fcn.2", 32),
        ("fcn.4.weight", (640, 32, 1, 1)),
        ("fcn.4.bias", (640,)),
        *_bn("bn", 128),
    ],
    "part_share": [*_PART_STEM, *_PART_FCN, *_bn("bn", 128)],
    "part_conv": [
        *[(f"part_pool.{p}.{name[len('part_pool.') :]}", shape) for p in range(5) for name, shape in _PART_STEM],
        *_PART_FCN,
        *_bn("bn", 128),
    ],
    "channel": [
        ("fcn.1.weight", (32, 128, 1, 1)),
        ("fcn.1.bias", (32,)),
        *_bn("fcn.2", 32),
        ("fcn.4.weight", (128, 32, 1, 1)),
        ("fcn.4.bias", (128,)),
        *_bn("bn", 128),
    ],
    "frame": [("conv.weight", (1, 2, 9, 1)), ("conv.bias", (1,)), *_bn("bn", 128)],
    "joint": [  # V = 17
        ("fcn.1.weight", (8, 17, 1, 1)),
        ("fcn.1.bias", (8,)),
        *_bn("fcn.2", 8),
        ("fcn.4.weight", (17, 8, 1, 1)),
        ("fcn.4.bias", (17,)),
        *_bn("bn", 128),
    ],
}
EXPECTED_JOINT_OPENPOSE = [  # V = 18
    ("fcn.1.weight", (9, 18, 1, 1)),
    ("fcn.1.bias", (9,)),
    *_bn("fcn.2", 9),
    ("fcn.4.weight", (18, 9, 1, 1)),
    ("fcn.4.bias", (18,)),
    *_bn("bn", 128),
]


def _model(skeleton, kind: str | None) -> ResGCN:
    torch.manual_seed(0)
    return ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8, attention=kind)


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_names_equal_the_original(skeleton, kind):
    model = _model(skeleton, kind)
    prefix = "main_stream.0.att."
    got = [(k[len(prefix) :], tuple(v.shape)) for k, v in model.state_dict().items() if k.startswith(prefix)]
    expected = EXPECTED_JOINT_OPENPOSE if kind == "joint" and skeleton.num_joints == 18 else EXPECTED_KEYS[kind]
    assert got == expected
    assert all(type(m.att) is CLASSES[kind] for m in model.main_stream)
    assert not any(".att" in k for k in model.state_dict() if k.startswith("input_branches"))
    assert all(m.att is None for branch in model.input_branches for m in branch.layers)


@pytest.mark.parametrize(
    "alias, kind",
    [("pa", "part"), ("psa", "part_share"), ("pca", "part_conv"), ("ca", "channel"), ("fa", "frame"), ("ja", "joint")],
)
def test_original_prefixes_are_aliases(coco17, alias, kind):
    assert type(_layer(alias, coco17)) is CLASSES[kind]


def test_unknown_kind_names_the_allowed_values(coco17):
    with pytest.raises(ValueError, match=r"model\.attention='spatial': expected null or one of .*part_share"):
        _layer("spatial", coco17)
    with pytest.raises(ValueError, match="model.attention"):
        ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8, attention="Part")


def test_part_coverage_and_first_part_rule(coco17):
    no_head = dataclasses.replace(coco17, parts={k: v for k, v in coco17.parts.items() if k != "head"})
    for kind in ("part", "part_share", "part_conv"):
        with pytest.raises(
            ConfigError, match=r"keypoints.parts=\[0, 1, 2, 3, 4\]: expected parts that hold every joint"
        ):
            _layer(kind, no_head)
    assert joint_parts([[0, 1], [1, 2]], 3).tolist() == [0, 0, 1]
    with pytest.raises(ValueError, match=r"keypoints.parts \(part 1\)=5: expected joints in 0..2"):
        joint_parts([[0, 1], [2, 5]], 3)


@pytest.mark.parametrize("kind", KINDS)
def test_layer_shape_layout_batch_one_and_backward(skeleton, kind):
    layer = _layer(kind, skeleton)
    x = _x(skeleton).requires_grad_()
    y = layer(x)
    assert y.shape == x.shape and y.is_contiguous(memory_format=torch.channels_last)
    assert (y >= 0).all()  # relu(...)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    layer.eval()
    with torch.no_grad():  # eval: each sample on its own, any batch size (the original squeeze() broke N=1)
        torch.testing.assert_close(layer(x[:1]), layer(x)[:1], rtol=1e-5, atol=1e-6)


def _softmax_groups(kind: str, skeleton, w: torch.Tensor) -> torch.Tensor:
    """Sum of the weights over the axis the softmax normalises."""
    if kind == "channel":
        assert w.shape == (3, 16, 1, 1)
        return w.sum(dim=1)
    if kind == "joint":
        assert w.shape == (3, 1, 1, skeleton.num_joints)
        return w.sum(dim=3)
    assert w.shape == (3, 16, 1, skeleton.num_joints)
    owner = _first_part(skeleton)
    one_joint_per_part = [owner.index(p) for p in range(len(skeleton.parts))]
    return w[..., one_joint_per_part].sum(dim=3)


@pytest.mark.parametrize("kind", ["part", "part_share", "part_conv", "channel", "joint"])
def test_weights_are_a_softmax(skeleton, kind):
    layer = _layer(kind, skeleton)
    w = layer.weights(_x(skeleton))
    assert (w > 0).all()
    sums = _softmax_groups(kind, skeleton, w)
    torch.testing.assert_close(sums, torch.ones_like(sums))
    if kind.startswith("part"):  # every joint carries the weight of its (first) part
        owner = _first_part(skeleton)
        for v in range(skeleton.num_joints):
            torch.testing.assert_close(w[..., v], w[..., owner.index(owner[v])])


def test_part_weights_follow_the_direct_formula(skeleton):
    layer = _layer("part", skeleton)
    x = _x(skeleton)
    layer.eval()
    with torch.no_grad():
        logits = layer.fcn(x).reshape(3, 16, len(skeleton.parts))
        got = layer.weights(x)
    probs = logits.softmax(dim=2)
    owner = _first_part(skeleton)
    expected = torch.stack([probs[:, :, owner[v]] for v in range(skeleton.num_joints)], dim=-1).unsqueeze(2)
    torch.testing.assert_close(got, expected)


def test_frame_attention_is_a_conv_over_per_frame_mean_and_max(skeleton):
    layer = _layer("frame", skeleton).eval()
    with torch.no_grad():
        layer.conv.weight.copy_(torch.linspace(-1.0, 1.0, 18).view(1, 2, 9, 1))
        layer.conv.bias.fill_(0.25)
    x = _x(skeleton)
    n, c, t, v = x.shape
    avg = [[x[i, :, f, :].mean().item() for f in range(t)] for i in range(n)]
    mx = [[x[i, :, f, :].max().item() for f in range(t)] for i in range(n)]
    a, b = layer.conv.weight[0, 0, :, 0].tolist(), layer.conv.weight[0, 1, :, 0].tolist()
    w = torch.tensor(
        [
            [
                0.25 + sum(a[k] * avg[i][f + k - 4] + b[k] * mx[i][f + k - 4] for k in range(9) if 0 <= f + k - 4 < t)
                for f in range(t)
            ]
            for i in range(n)
        ]
    ).view(n, 1, t, 1)
    with torch.no_grad():
        torch.testing.assert_close(layer.weights(x), w, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(layer(x), torch.relu(x * w / (1 + EPS) ** 0.5 + x), rtol=1e-5, atol=1e-5)


def test_channel_and_joint_outputs_follow_the_direct_formula(coco17):
    x = _x(coco17)
    for kind, expected_w in (
        ("channel", lambda layer: layer.fcn[1:](x.mean(dim=(2, 3), keepdim=True))),
        ("joint", lambda layer: layer.fcn[1:](x.mean(dim=(1, 2)).view(3, 17, 1, 1)).view(3, 1, 1, 17)),
    ):
        layer = _layer(kind, coco17).eval()
        with torch.no_grad():
            w = expected_w(layer)
            torch.testing.assert_close(layer(x), torch.relu(x * w / (1 + EPS) ** 0.5 + x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["part_share", "part_conv"])
def test_part_pools_follow_the_direct_per_part_formula(skeleton, kind):
    layer = _layer(kind, skeleton).eval()
    parts = list(skeleton.parts.values())
    stems = [layer.part_pool] * len(parts) if kind == "part_share" else list(layer.part_pool)
    torch.manual_seed(2)
    with torch.no_grad():
        for stem in stems:  # hand-set, distinct per part for part_conv
            stem[0].weight.copy_(torch.randn_like(stem[0].weight))
            stem[0].bias.copy_(torch.randn_like(stem[0].bias))
    x = _x(skeleton)
    expected = torch.zeros(3, 4)
    for p, joints in enumerate(parts):
        conv = stems[p][0]
        w, bias = conv.weight[:, :, 0, 0], conv.bias
        for v in joints:  # mean over (T, part joints) of relu(W x + b), BN at its initial statistics
            h = torch.einsum("oc,nct->not", w, x[:, :, :, v]) + bias.view(1, -1, 1)
            expected += torch.relu(h / (1 + EPS) ** 0.5).mean(dim=2) / len(joints)
    with torch.no_grad():
        pooled = layer.pooled(x)
        torch.testing.assert_close(pooled, expected.view(3, 4, 1, 1), rtol=1e-5, atol=1e-5)
        logits = layer.fcn(pooled).reshape(3, 16, len(parts))
        owner = _first_part(skeleton)
        expected_w = logits.softmax(dim=2)[:, :, owner].unsqueeze(2)
        torch.testing.assert_close(layer.weights(x), expected_w)
    if kind == "part_conv":  # stems are not interchangeable: swapping two changes the pooled features
        layer.part_pool[0], layer.part_pool[1] = layer.part_pool[1], layer.part_pool[0]
        with torch.no_grad():
            assert not torch.allclose(layer.pooled(x), pooled)


@pytest.mark.parametrize("kind", ["part_share", "part_conv"])
def test_each_part_goes_through_its_stem_on_its_own(coco17, kind):
    """Batch statistics per part, as the original: the shared stem's BatchNorm updates once per part."""
    layer = _layer(kind, coco17).train()
    layer(_x(coco17))
    counts = [
        int(m.num_batches_tracked)
        for n, m in layer.named_modules()
        if n.startswith("part_pool") and isinstance(m, torch.nn.BatchNorm2d)
    ]
    assert counts == ([5] if kind == "part_share" else [1] * 5)


@pytest.mark.parametrize("kind", KINDS)
def test_resgcn_with_attention_trains_and_fuses(skeleton, kind):
    model = _model(skeleton, kind).train()
    att_convs = [m for block in model.main_stream for m in block.att.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(not m.bias.any() for m in att_convs)  # _init_parameters reaches the attention layers
    x = torch.randn(2, 12, skeleton.num_joints, 3, 5)
    emb, feat, _ = model(x)
    assert emb.shape == (2, 128) and feat.shape == (2, 256, 3, skeleton.num_joints)
    emb.square().sum().add(feat.mean()).backward()
    for name, p in model.named_parameters():
        if ".att." in name:
            assert p.grad is not None and torch.isfinite(p.grad).all(), name
    model.eval()
    with torch.no_grad():
        emb, _, _ = model(x)
        torch.testing.assert_close(model(x[:1])[0], emb[:1], rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(model.fused_for_inference()(x)[0], emb, rtol=1e-4, atol=1e-4)


def test_parameter_counts_n21_coco(coco17):
    """Trainable parameters of resgcn n21-r8, COCO-17, 3 branches x 5 channels, per attention kind."""
    counts = {
        kind: sum(p.numel() for p in _model(coco17, kind).parameters() if p.requires_grad) for kind in (None, *KINDS)
    }
    assert counts == {
        None: 350_822,
        "part": 476_678,
        "part_share": 482_086,
        "part_conv": 565_158,
        "channel": 393_222,
        "frame": 351_628,
        "joint": 352_216,
    }


@pytest.mark.parametrize("value, kind", [("psa", "part_share"), ("frame", "frame")])
def test_model_config_selects_the_attention(coco17, value, kind):
    cfg = OmegaConf.load(CONF_DIR / "model" / "resgcn_n21_r8.yaml")
    assert cfg.attention is None  # GaitGraph2 default
    cfg.attention = value
    model = build_model(cfg, coco17)
    assert all(type(m.att) is CLASSES[kind] for m in model.main_stream)
