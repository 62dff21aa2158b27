"""The project's ResGCN gives the embeddings of the original GaitGraph2 network on the same weights and input.

``data/original_embeddings.npz`` was recorded by ``data/record_original_embeddings.py`` running GaitGraph2's
ResGCNv1 code (``GaitGraph/models/ResGCNv1`` and the ``datasets/graph.py`` adjacency of tteepe/GaitGraph2 @
e10df17b9cff351d1c9ca113960312e8d429b330; unchanged up to 0c619f3) in float64, on the weights of
:func:`seeded_state_dict` loaded by name (``strict=True``) and the input of :func:`seeded_input`; the original
code is not part of this project. Weights come from numpy's seeded generator, so the record does not depend on
torch's initialisation. Re-recording reproduces the file to float64 rounding (largest difference 9e-12 on
feature sums of magnitude 2.5e4), far inside the tolerances below.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.models.resgcn import ResGCN

RECORD = Path(__file__).parent / "data" / "original_embeddings.npz"
#: original model name -> (keypoints option, stage depths, reduction, attention): GaitGraph2's two configs,
#: another depth, and every attention kind.
CASES = {
    "resgcn-n21-r8": ("coco17", [1, 1, 1, 1], 8, None),
    "resgcn-n51-r4": ("openpose", [1, 2, 3, 3], 4, None),
    "resgcn-n39-r8": ("coco17", [1, 2, 2, 2], 8, None),
    # ResGCN v1's attention prefixes (main-stream modules only)
    "pa-resgcn-n21-r8": ("coco17", [1, 1, 1, 1], 8, "part"),
    "psa-resgcn-n21-r8": ("coco17", [1, 1, 1, 1], 8, "part_share"),
    "pca-resgcn-n21-r8": ("openpose", [1, 1, 1, 1], 8, "part_conv"),
    "ca-resgcn-n21-r8": ("coco17", [1, 1, 1, 1], 8, "channel"),
    "fa-resgcn-n21-r8": ("coco17", [1, 1, 1, 1], 8, "frame"),
    "ja-resgcn-n21-r8": ("openpose", [1, 1, 1, 1], 8, "joint"),
}


def build(case: str) -> ResGCN:
    keypoints, structure, reduction, attention = CASES[case]
    skeleton = instantiate(OmegaConf.load(CONF_DIR / "keypoints" / f"{keypoints}.yaml"))
    return ResGCN(skeleton, structure, "Bottleneck", reduction, 128, attention=attention).double()


def seeded_state_dict(model: torch.nn.Module, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every parameter and BatchNorm statistic drawn from numpy (key order), scaled to keep activations O(1)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, value in model.state_dict().items():
        shape = tuple(value.shape)
        leaf = key.rsplit(".", 1)[-1]
        if not value.is_floating_point() or key.endswith(".A") or key == "A":
            out[key] = value.clone()
            continue
        if leaf == "running_var":
            new = rng.uniform(0.5, 1.5, shape)
        elif leaf in ("running_mean", "bias"):
            new = rng.normal(0.0, 0.2, shape)
        elif leaf == "edge" or (leaf == "weight" and value.dim() == 1):
            new = rng.normal(1.0, 0.2, shape)
        else:  # conv / linear weights
            new = rng.normal(0.0, np.sqrt(2.0 / max(np.prod(shape[1:]), 1)), shape)
        out[key] = torch.from_numpy(np.asarray(new, dtype=np.float64))
    return out


def seeded_input(num_joints: int, seed: int = 1) -> torch.Tensor:
    """(N=4, T=40, V, I=3, C=5) float64 input."""
    return torch.from_numpy(np.random.default_rng(seed).normal(0.0, 1.0, (4, 40, num_joints, 3, 5)))


@pytest.mark.parametrize("case", list(CASES))
def test_embeddings_equal_the_original_network(case):
    record = np.load(RECORD)
    model = build(case)
    model.load_state_dict(seeded_state_dict(model))
    x = seeded_input(model.A.shape[-1])
    with torch.no_grad():
        model.eval()
        eval_embedding, eval_feature, _ = model(x)
        # the folded inference copy (evaluation's fast path) gives the same embeddings up to float64 rounding
        fused, _, _ = model.fused_for_inference()(x)
        model.train()  # batch statistics, as in the original's training forward (updates running statistics)
        train_embedding, _, _ = model(x)
    np.testing.assert_allclose(eval_embedding.numpy(), record[f"{case}/eval"], rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(
        eval_feature.sum(dim=(2, 3)).numpy(), record[f"{case}/feature_sum"], rtol=1e-9, atol=1e-9
    )
    np.testing.assert_allclose(fused.numpy(), record[f"{case}/eval"], rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(train_embedding.numpy(), record[f"{case}/train"], rtol=1e-9, atol=1e-10)
