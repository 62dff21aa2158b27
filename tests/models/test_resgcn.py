import hashlib
import re
from pathlib import Path

import pytest
import torch

from gaitgraph.models import build_model
from gaitgraph.models.resgcn import ResGCN

#: The original GaitGraph2 state_dicts, one "key (shape) dtype param|buffer" line per entry under a
#: "[resgcn-<name> keypoints=...]" header; listed from the original code (see the file's header).
ORIGINAL = Path(__file__).parent / "data" / "gaitgraph2_state_dict.txt"
#: Entry count and sha256 of each listing, so the data file cannot drift from what was checked against the original.
EXPECTED = {
    "n21_r8": (330, "6482dbdd609725f7ad7a2a5b22e2b791025f76825b74b1ad98aac3dbb4f5b7bc"),
    "n51_r4": (631, "7727dea66e3ffe3a75fd7d42041263153738f7f893bf0ea6fa3142765c7382fc"),
}


def _listing(model: torch.nn.Module) -> list[str]:
    params = {n for n, _ in model.named_parameters()}
    return [
        f"{k} ({','.join(map(str, v.shape))}) {str(v.dtype).removeprefix('torch.')} "
        f"{'param' if k in params else 'buffer'}"
        for k, v in model.state_dict().items()
    ]


def _original_listing(name: str) -> list[str]:
    sections = re.split(r"^\[resgcn-(\S+) [^\]]*\]\n", ORIGINAL.read_text(), flags=re.MULTILINE)
    listings = {n.replace("-", "_"): body.strip().splitlines() for n, body in zip(sections[1::2], sections[2::2])}
    return listings[name]


def _cfg_model(name: str, skeleton, **over):
    """The composed ``model=resgcn_<name>`` option (deeper ResGCNs inherit n21-r8's file), with ``over`` applied."""
    from tests.conftest import compose_train

    cfg = compose_train([f"model=resgcn_{name}"]).model
    cfg.update(over)
    return build_model(cfg, skeleton)


@pytest.mark.parametrize(
    ("name", "fixture", "params"), [("n21_r8", "coco17", 350_822), ("n51_r4", "openpose18", 765_278)]
)
def test_state_dict_equals_original(request, name, fixture, params):
    model = _cfg_model(name, request.getfixturevalue(fixture))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == params
    original = _original_listing(name)
    count, digest = EXPECTED[name]
    assert len(original) == count
    assert hashlib.sha256("\n".join(original).encode()).hexdigest() == digest
    assert _listing(model) == original


@pytest.mark.parametrize("name", ["n21_r8", "n39_r8", "n51_r4", "n75_r4"])
def test_configs_build_and_shapes(coco17, name):
    model = _cfg_model(name, coco17).eval()
    emb, feat, _ = model(torch.randn(2, 60, 17, 3, 5))
    assert emb.shape == (2, 128) and feat.shape == (2, 256, 15, 17)
    emb1, _, _ = model(torch.randn(1, 30, 17, 3, 5))
    assert emb1.shape == (1, 128)  # 2-D also for one sample


def test_init_and_gradients(coco17):
    torch.manual_seed(0)
    model = ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8)
    assert torch.count_nonzero(model.main_stream[0].scn.bn_up.weight) == 0
    assert torch.count_nonzero(model.main_stream[0].tcn.bn_up.weight) == 0
    assert model.fcn.weight.std().item() == pytest.approx(0.001, rel=0.1)
    assert torch.equal(model.input_branches[1].A, model.A)
    emb, feat, _ = model(torch.randn(4, 20, 17, 3, 5))
    assert feat.shape == (4, 256, 5, 17)
    emb.pow(2).sum().backward()
    edge_grad = model.input_branches[0].layers[0].edge.grad
    assert edge_grad[:3].abs().sum() > 0 and torch.count_nonzero(edge_grad[3]) == 0  # hop 3 is never used


@pytest.mark.parametrize(("branch_layer", "c_in", "c_out"), [(0, 5, 64), (1, 4, 4)])
def test_graph_conv_matches_reference_einsum(coco17, branch_layer, c_in, c_out):
    torch.manual_seed(1)
    model = ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8)
    conv = model.input_branches[0].layers[branch_layer].scn.conv
    torch.nn.init.normal_(conv.gcn.bias)
    x, A = torch.randn(3, c_in, 7, 17), torch.rand(4, 17, 17)
    y = conv.gcn(x)
    ref = torch.einsum("nkctv,kvw->nctw", y.view(3, 3, c_out, 7, 17), A[:3])
    torch.testing.assert_close(conv(x, A), ref, rtol=1e-5, atol=1e-5)


def test_basic_blocks_and_attention(coco17, openpose18):
    basic = ResGCN(coco17, [1, 2, 2, 2], "Basic", 1, num_input=1, num_channel=3)
    keys = basic.state_dict().keys()
    assert "main_stream.0.residual.0.weight" in keys and "main_stream.0.tcn.residual.0.weight" not in keys
    assert basic(torch.randn(2, 12, 17, 1, 3))[0].shape == (2, 128)
    for kind in ("part", "part_share", "part_conv", "channel", "frame", "joint", "pca"):
        att = ResGCN(openpose18, [1, 1, 1, 1], "Bottleneck", 8, attention=kind)
        assert any(k.startswith("main_stream.0.att.") for k in att.state_dict())
        assert not any(".att." in k for k in att.state_dict() if k.startswith("input_branches"))
        assert att(torch.randn(2, 12, 18, 3, 5))[0].shape == (2, 128)
    with pytest.raises(ValueError, match="attention"):
        ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8, attention="bogus")


def test_wrong_input_shape_is_reported(coco17):
    with pytest.raises(ValueError, match=r"\(N, T, V, 3, C\)"):
        ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8)(torch.randn(2, 10, 17, 15))
