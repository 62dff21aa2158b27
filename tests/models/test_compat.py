import pytest
import torch

from gaitgraph.errors import CheckpointError

from gaitgraph.models import build_model
from gaitgraph.models.compat import load_gaitgraph2_state_dict
from gaitgraph.models.resgcn import ResGCN

CFG = {"_target_": "gaitgraph.models.resgcn.ResGCN", "structure": [1, 1, 1, 1], "block": "Bottleneck", "reduction": 8}


def _trained_like(skeleton):
    torch.manual_seed(0)
    model = ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8)
    with torch.no_grad():  # non-trivial weights and running stats everywhere
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.rand_like(t) * 0.1)
    return model.eval()


@pytest.mark.parametrize("wrap", ["plain", "lightning_model", "lightning_backbone", "g1"])
def test_load_from_file_gives_equal_embeddings(tmp_path, coco17, wrap):
    source = _trained_like(coco17)
    sd = source.state_dict()
    ckpt = {
        "plain": sd,
        "lightning_model": {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in sd.items()}},
        "lightning_backbone": {"state_dict": {**{f"backbone.{k}": v for k, v in sd.items()}, "loss.w": torch.ones(1)}},
        "g1": {"model": sd, "optimizer": {}},
    }[wrap]
    path = tmp_path / "w.ckpt"
    torch.save(ckpt, path)
    target = build_model({**CFG, "pretrained": str(path), "features": "gaitgraph2"}, coco17).eval()
    x = torch.randn(3, 20, 17, 3, 5)
    with torch.no_grad():
        assert torch.equal(target(x)[0], source(x)[0])


def test_mismatch_errors_list_keys_and_shapes(coco17, openpose18):
    sd = _trained_like(coco17).state_dict()
    with pytest.raises(CheckpointError, match=r"shape mismatches \(\d+\): A: expected \(4, 18, 18\), found \(4, 17, 17\)"):
        load_gaitgraph2_state_dict(ResGCN(openpose18, [1, 1, 1, 1], "Bottleneck", 8), sd)
    partial = {k: v for k, v in sd.items() if not k.startswith("input_branches.2.")}
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): input_branches\.2\.A"):
        load_gaitgraph2_state_dict(ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8), partial)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(\d+\): input_branches\.2\."):
        load_gaitgraph2_state_dict(ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8, num_input=2), sd)
