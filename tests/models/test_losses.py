import math

import pytest
import torch

from gaitgraph.models.base import ModelOutput
from gaitgraph.models.losses import SupConLoss


def _slow_supcon(emb, labels, temperature):
    z = [e / e.norm() for e in emb.double()]
    n = len(z)
    losses = []
    for i in range(n):
        logits = [-(z[i] - z[a]).norm().item() / temperature for a in range(n)]
        denom = math.log(sum(math.exp(logits[a]) for a in range(n) if a != i))
        pos = [p for p in range(n) if p != i and labels[p] == labels[i]]
        if pos:
            losses.append(-sum(logits[p] - denom for p in pos) / len(pos))
    losses = [v for v in losses if v > 0]
    return sum(losses) / len(losses) if losses else 0.0


@pytest.mark.parametrize("temperature", [0.01, 0.07, 1.0])
def test_matches_loop_reference(temperature):
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(24, 16, generator=g, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3] * 3)
    labels[-1] = 99  # one anchor without positives
    got = SupConLoss(temperature)(ModelOutput(emb), labels)
    assert got.item() == pytest.approx(_slow_supcon(emb, labels.tolist(), temperature), rel=1e-9)


def test_scale_invariant_and_gradients_finite():
    torch.manual_seed(0)
    emb = torch.randn(40, 8, requires_grad=True)
    labels = torch.randint(0, 5, (40,))
    loss = SupConLoss(0.01)(ModelOutput(emb), labels)
    assert torch.allclose(loss, SupConLoss(0.01)(ModelOutput(emb.detach() * 7.0), labels), rtol=1e-4)
    loss.backward()
    assert torch.isfinite(emb.grad).all() and emb.grad.abs().sum() > 0


@pytest.mark.parametrize("labels", [[0, 1, 2, 3], [5, 5, 5, 5], [0]])
def test_no_positive_or_no_negative_is_zero_with_grad(labels):
    emb = torch.randn(len(labels), 8, requires_grad=True)
    loss = SupConLoss()(ModelOutput(emb), torch.tensor(labels))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(emb.grad, torch.zeros_like(emb))


def test_pulls_positives_together():
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    good = SupConLoss(0.1)(ModelOutput(emb), torch.tensor([0, 1, 0, 1]))
    bad = SupConLoss(0.1)(ModelOutput(emb), torch.tensor([0, 0, 1, 1]))
    assert good < bad


def test_shape_errors():
    with pytest.raises(ValueError, match="labels"):
        SupConLoss()(ModelOutput(torch.randn(4, 3)), torch.zeros(5))
