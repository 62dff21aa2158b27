import math

import pytest
import torch

from gaitgraph.errors import ConfigError
from gaitgraph.models.base import ModelOutput
from gaitgraph.models.losses import CrossEntropyLoss, SupConLoss, TripletLoss, WeightedSum


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


# FastPoseGait's triplet loss. Two parts of 1-D embeddings, labels 0 0 1 1; per part a hand-computed answer.
LABELS = torch.tensor([0, 0, 1, 1])
PART_A = [0.0, 1.0, 3.0, 5.0]  # hard: only anchor 2 violates (farthest positive 2, nearest negative 2): 0.3
PART_B = [0.0, 0.0, 0.0, 2.0]  # hard: 0.3, 0.3, 2.3 (2 - 0 + 0.3), 0.3 -> 0.8
TWO_PARTS = torch.tensor([PART_A, PART_B]).T.unsqueeze(1)  # [N=4, D=1, P=2]


@pytest.mark.parametrize(
    ("embedding", "mining", "expected"),
    [
        (torch.tensor(PART_A)[:, None], "batch_hard", 0.3),
        (TWO_PARTS, "batch_hard", (0.3 + 0.8) / 2),
        # all: part A has one violating triplet (a2, p3, n1: 2 - 2 + 0.3); part B ten non-zero terms summing to 7.0
        (torch.tensor(PART_A)[:, None], "batch_all", 0.3),
        (TWO_PARTS, "batch_all", (0.3 + 0.7) / 2),
    ],
)
def test_triplet_hand_computed(embedding, mining, expected):
    loss = TripletLoss(0.3, mining)(ModelOutput(embedding), LABELS)
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def _slow_triplet(emb, labels, margin, mining):
    """Loop transcription of the definition for [N, D, P] embeddings."""
    per_part = []
    for p in range(emb.shape[2]):
        x = emb[:, :, p]
        d = [[float((x[i] - x[j]).norm()) for j in range(len(x))] for i in range(len(x))]
        terms = []
        for a in range(len(x)):
            pos = [j for j in range(len(x)) if labels[j] == labels[a]]
            neg = [j for j in range(len(x)) if labels[j] != labels[a]]
            if mining == "batch_hard":
                terms.append(max(0.0, max(d[a][j] for j in pos) - min(d[a][j] for j in neg) + margin))
            else:
                terms += [max(0.0, d[a][i] - d[a][j] + margin) for i in pos for j in neg]
        nonzero = [t for t in terms if t != 0]
        per_part.append(sum(nonzero) / len(nonzero) if nonzero else 0.0)
    return sum(per_part) / len(per_part)


@pytest.mark.parametrize("mining", ["batch_hard", "batch_all"])
def test_triplet_matches_loop_definition(mining):
    g = torch.Generator().manual_seed(5)
    emb = torch.randn(12, 6, 3, generator=g, dtype=torch.float64) * 0.3
    labels = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    got = TripletLoss(0.3, mining)(ModelOutput(emb), labels)
    assert got.item() == pytest.approx(_slow_triplet(emb.float().double(), labels.tolist(), 0.3, mining), rel=1e-5)


def test_triplet_satisfied_batch_is_zero_and_bad_mining_is_a_config_error():
    emb = torch.tensor([[0.0], [0.1], [5.0], [5.1]], requires_grad=True)
    loss = TripletLoss(0.3)(ModelOutput(emb), LABELS)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(emb.grad).all()
    with pytest.raises(ConfigError, match="loss.mining"):
        TripletLoss(0.3, "semi_hard")


LN3 = math.log(3.0)


@pytest.mark.parametrize(
    ("logits", "labels", "scale", "smoothing", "expected"),
    [
        ([[0.0, LN3]], [0], 1.0, 0.0, math.log(4)),  # p = 1/4
        ([[0.0, LN3]], [1], 1.0, 0.0, math.log(4 / 3)),
        ([[0.0, LN3 / 16]], [0], 16.0, 0.0, math.log(4)),  # scaled by 16 first
        ([[0.0, LN3]], [0], 1.0, 0.1, 0.9 * math.log(4) + 0.1 * (math.log(4) + math.log(4 / 3)) / 2),
        ([[[0.0, 0.0], [LN3, 0.0]]], [0], 1.0, 0.0, (math.log(4) + math.log(2)) / 2),  # [N, C, P]: mean over parts
    ],
)
def test_cross_entropy_hand_computed(logits, labels, scale, smoothing, expected):
    output = ModelOutput(torch.zeros(1, 2), logits=torch.tensor(logits))
    loss = CrossEntropyLoss(scale, smoothing)(output, torch.tensor(labels))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_cross_entropy_needs_logits():
    with pytest.raises(ValueError, match="no logits"):
        CrossEntropyLoss()(ModelOutput(torch.zeros(2, 3)), torch.tensor([0, 1]))


def test_weighted_sum():
    output = ModelOutput(torch.tensor(PART_A)[:, None], logits=torch.tensor([[0.0, LN3]] * 4))
    loss = WeightedSum(
        {"triplet": TripletLoss(0.3), "softmax": CrossEntropyLoss(1.0)}, {"triplet": 1.0, "softmax": 0.5}
    )
    total = loss(output, torch.tensor([0, 0, 1, 1]))
    ce = (2 * math.log(4) + 2 * math.log(4 / 3)) / 4
    assert total.item() == pytest.approx(0.3 + 0.5 * ce, rel=1e-6)
    assert loss.last_terms["triplet"].item() == pytest.approx(0.3, rel=1e-6)
    with pytest.raises(ConfigError, match="loss.weights"):
        WeightedSum({"triplet": TripletLoss()}, {"softmax": 1.0})
