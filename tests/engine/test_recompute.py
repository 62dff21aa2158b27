"""Activation recomputation gives the same gradients, weights and BatchNorm buffers as the plain model."""

from __future__ import annotations

import copy

import pytest
import torch

from gaitgraph.engine.recompute import recompute_activations
from gaitgraph.models.features import multi_input
from gaitgraph.models.losses import SupConLoss
from gaitgraph.models.resgcn import ResGCN

from .conftest import coco17


@pytest.mark.slow
@pytest.mark.parametrize(("level", "targets"), [("full", 3 * 2 + 2), ("partial", (3 + 2) * 2)])
def test_recomputed_model_trains_identically(level: str, targets: int):
    skeleton = coco17()
    torch.manual_seed(0)
    plain = ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8, 32)
    recomputed = copy.deepcopy(plain)
    assert recompute_activations(recomputed, level) == targets
    x = multi_input(torch.randn(12, 16, 17, 3) * 20 + 100, skeleton)
    y = torch.arange(12) % 4
    loss_fn = SupConLoss(0.01)
    for model in (plain, recomputed):
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            loss_fn(model(x), y).backward()
            optimizer.step()
    a, b = plain.state_dict(), recomputed.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6, msg=k)
    assert int(b["input_branches.0.bn.num_batches_tracked"]) == 2
    recomputed.eval()
    with torch.no_grad():
        torch.testing.assert_close(plain.eval()(x)[0], recomputed(x)[0])
