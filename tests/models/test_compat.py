import pickle

import pytest
import torch

from gaitgraph.errors import CheckpointError
from gaitgraph.models import build_model
from gaitgraph.models.compat import load_pretrained
from gaitgraph.models.resgcn import ResGCN

from ..payload import CodePayload

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
    with pytest.raises(
        CheckpointError, match=r"shape mismatches \(\d+\): A: expected \(4, 18, 18\), found \(4, 17, 17\)"
    ):
        load_pretrained(ResGCN(openpose18, [1, 1, 1, 1], "Bottleneck", 8), sd)
    partial = {k: v for k, v in sd.items() if not k.startswith("input_branches.2.")}
    with pytest.raises(CheckpointError, match=r"missing keys \(\d+\): input_branches\.2\.A"):
        load_pretrained(ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8), partial)
    with pytest.raises(CheckpointError, match=r"unexpected keys \(\d+\): input_branches\.2\."):
        load_pretrained(ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8, num_input=2), sd)


def test_unsafe_checkpoint_is_refused_without_running_its_code(tmp_path, coco17):
    marker = tmp_path / "ran"
    pickle.loads(pickle.dumps(CodePayload(marker))).close()  # the payload does run when unpickled freely
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.pt"
    torch.save({"model": _trained_like(coco17).state_dict(), "opt": CodePayload(marker)}, path)
    model = ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8)
    with pytest.raises(
        CheckpointError,
        match=r"(?s)evil\.pt: holds pickled Python objects besides the weights \(first: "
        r"\S*open\).*weights_only=False",
    ):
        build_model({**CFG, "pretrained": str(path), "features": "gaitgraph2"}, coco17)
    with pytest.raises(CheckpointError):
        load_pretrained(model, path)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"), [(None, "no such checkpoint file"), (b"not a checkpoint" * 4, "not a readable checkpoint")]
)
def test_missing_or_unreadable_file(tmp_path, coco17, content, message):
    path = tmp_path / "w.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        load_pretrained(ResGCN(coco17, [1, 1, 1, 1], "Bottleneck", 8), path)


def test_fastposegait_checkpoint_round_trip(tmp_path):
    """A FastPoseGait checkpoint: {"model": state_dict (no ``module.`` prefix), "optimizer", "scheduler",
    "iteration"}."""
    from .conftest import build_zoo

    source, skeleton = build_zoo("gpgait")
    optimizer = torch.optim.Adam(source.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-3, total_steps=10, three_phase=True)
    poses = torch.rand(4, 12, 17, 3) * 200
    source.train()
    source(source.input_features(poses)).embedding.square().mean().backward()
    optimizer.step()
    scheduler.step()
    path = tmp_path / "gpgait-40000.pt"
    torch.save(
        {
            "model": source.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "iteration": 40000,
        },
        path,
    )
    target = build_model(
        {
            "_target_": "gaitgraph.models.gpgait.GPGait",
            "in_channels": [2, 64, 64, 128, 256],
            "num_classes": 74,
            "pretrained": str(path),
        },
        skeleton,
    )
    source.eval(), target.eval()
    with torch.no_grad():
        assert torch.equal(target.embed(poses), source.embed(poses))
