"""The FastPoseGait zoo (GaitGraph1, GaitTR, GPGait): the reference's state_dicts, parameter counts, layouts,
output shapes and the facts its evaluation depends on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gaitgraph.errors import ConfigError
from gaitgraph.models import build_model
from gaitgraph.models.gaitgraph1 import GaitGraph1
from gaitgraph.models.gaittr import GaitTR
from gaitgraph.models.gpgait import PAGCN, GPGait

from .conftest import ZOO, build_zoo

LISTINGS = json.loads((Path(__file__).parent / "data" / "fastposegait_state_dicts.json").read_text())
#: Trainable parameters of FastPoseGait's own networks (issue 15), also what the recorder measured.
PARAMETERS = {
    "gaitgraph1": 319_530,
    "gaitgraph1_oumvlp": 353_406,
    "gaittr": 512_010,
    "gaittr_oumvlp": 545_458,
    "gpgait": 3_654_810,
    "gpgait_oumvlp": 32_479_008,
}


@pytest.mark.parametrize("option", list(ZOO))
def test_state_dict_order_shapes_and_parameter_count_match_fastposegait(option):
    model, _ = build_zoo(option)
    reference = LISTINGS[option]
    assert [[k, list(v.shape)] for k, v in model.state_dict().items()] == reference["state_dict"]
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert trainable == reference["trainable_parameters"] == PARAMETERS[option]


@pytest.mark.parametrize(
    ("option", "embedding", "train_embedding", "logits"),
    [
        ("gaitgraph1", (3, 128), (3, 128), None),
        ("gaitgraph1_oumvlp", (3, 256), (3, 256), None),
        ("gaittr", (3, 128), (3, 128), None),
        ("gaittr_oumvlp", (3, 256), (3, 256), None),
        ("gpgait", (3, 256, 19), (3, 256, 19), (3, 74, 19)),
    ],
)
def test_output_shapes_on_raw_pixel_poses(option, embedding, train_embedding, logits):
    model, skeleton = build_zoo(option)
    poses = torch.rand(3, 12, skeleton.num_joints, 3) * torch.tensor([320.0, 240.0, 1.0])
    out = model(model.input_features(poses))
    assert out.embedding.shape == train_embedding
    assert (None if out.logits is None else tuple(out.logits.shape)) == logits
    out.embedding.sum().backward()  # trainable end to end
    model.eval()
    with torch.no_grad():
        emb = model.embed(poses)
    assert emb.shape == embedding and torch.isfinite(emb).all()


def test_gaitgraph1_embed_is_the_mean_of_normalised_sequence_and_reversal():
    model, _ = build_zoo("gaitgraph1")
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():  # break the zero-initialised residual-only start
            p.add_(torch.randn_like(p) * 0.05)
    model.eval()
    poses = torch.rand(2, 24, 17, 3) * 100 + torch.arange(24.0).view(1, 24, 1, 1) ** 2  # not symmetric in time
    with torch.no_grad():
        forward = model(model.input_features(poses)).embedding
        backward = model(model.input_features(poses.flip(1))).embedding
        emb = model.embed(poses)
    torch.testing.assert_close(forward.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(emb, (forward + backward) / 2)
    assert (emb.norm(dim=1) < 1 - 1e-5).all()  # not normalised again


def test_gaitgraph1_first_main_module_halves_the_sequence():
    model, _ = build_zoo("gaitgraph1")
    net = model.ResGCN
    x = net.head[0](torch.randn(2, 3, 24, 17))
    assert net.backbone[0](x, net.graph).shape[2] == 12
    assert model(torch.randn(2, 24, 17, 1, 3)).feature_map.shape == (2, 256, 6, 17)  # halved again at 128 -> 256


def test_gpgait_adjacency_offsets_are_independent_parameters():
    # FastPoseGait builds every PA of a branch on one storage: loading there on the CPU leaves all equal to the last.
    model, _ = build_zoo("gpgait")
    state = model.state_dict()
    names = [k for k in state if k.endswith(".PA")]
    assert len(names) == 2 * (3 + 4) + (3 + 2)  # pose, bone: 3 shared + 4 streams; angle: 3 shared + 2 streams
    state.update({k: torch.full_like(state[k], float(i)) for i, k in enumerate(names)})
    model.load_state_dict(state)
    loaded = model.state_dict()
    assert [float(loaded[k][0, 0, 0]) for k in names] == [float(i) for i in range(len(names))]
    assert all(
        m.PA.data_ptr() != other.PA.data_ptr()
        for m in model.modules()
        if isinstance(m, PAGCN)
        for other in model.modules()
        if isinstance(other, PAGCN) and other is not m
    )


def test_gpgait_eval_embedding_is_the_normalised_bnneck_output():
    model, _ = build_zoo("gpgait")
    model.eval()
    poses = torch.rand(2, 16, 17, 3) * 200
    with torch.no_grad():
        emb = model.embed(poses)
        parts = model(model.input_features(poses)).embedding
    torch.testing.assert_close(emb.norm(dim=1), torch.ones(2, 19))
    bn = model.BNNecks.bn1d
    expected = F.normalize(
        ((parts.flatten(1) - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias).view_as(
            parts
        ),
        dim=1,
    )
    torch.testing.assert_close(emb, expected)


def test_fastposegait_initialisation():
    gg1, _ = build_zoo("gaitgraph1")
    tr, _ = build_zoo("gaittr")
    gp, _ = build_zoo("gpgait")
    assert not gg1.ResGCN.backbone[1].tcn.bn_up.weight.any()  # zero_init_lastBN
    assert float(gg1.ResGCN.fcn.weight.detach().std()) == pytest.approx(0.001, rel=0.05)
    conv = tr.backbone[1].tcn.conv.weight.detach()  # xavier uniform, not the layer's own N(0, sqrt(2/n))
    bound = (6 / (conv.shape[1] * 9 + conv.shape[0] * 9)) ** 0.5
    assert float(conv.abs().max()) <= bound and float(conv.abs().max()) > 0.9 * bound
    assert all(bool((m.PA == 1e-6).all()) for m in gp.modules() if isinstance(m, PAGCN))


def test_layout_errors_name_keypoints(coco17, openpose18):
    with pytest.raises(
        ConfigError, match=r"keypoints='openpose18 \(18 joints\)': expected coco17 \(17 joints\) for GPGait"
    ):
        GPGait(openpose18, [2, 64, 64, 128, 256], 74)
    cfg = {"_target_": "gaitgraph.models.gaittr.GaitTR", "in_channels": [10, 64], "keypoints": "coco17"}
    with pytest.raises(ConfigError, match=r"keypoints=.*openpose18.*expected layout 'coco17'"):
        build_model(cfg, openpose18)
    assert isinstance(GaitTR(openpose18, [10, 64]), GaitTR) and isinstance(
        GaitGraph1(coco17, [3, 32], [32, 64]), GaitGraph1
    )
