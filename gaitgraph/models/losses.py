"""Training losses: GaitGraph2's supervised contrastive loss (PML SupConLoss + LpDistance,
docs/original-network.md#supcon-loss) and the FastPoseGait zoo's triplet and cross-entropy losses, with a weighted
sum to combine them.

Every loss is an ``nn.Module`` called as ``loss(output, labels)`` with a :class:`ModelOutput` and the labels of the
GLOBAL batch (under DDP the engine gathers every rank's embeddings and logits first).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.base import ModelOutput


class SupConLoss(nn.Module):
    """SupCon on L2-normalised embeddings with logits ``-||z_i - z_j||_2 / temperature`` (plain distance).

    Per anchor i with positives P(i) (same label, i excluded):
    ``-mean_{p in P(i)} [l_ip - logsumexp_{a != i} l_ia]``; the result is the mean over anchors whose loss is
    > 0 (anchors without positives drop out). Returns a zero that still carries a graph when the batch has no
    positive pair or no negative pair.
    """

    def __init__(self, temperature: float = 0.01):
        super().__init__()
        if temperature <= 0:
            raise ConfigError("loss.temperature", temperature, "a number > 0")
        self.temperature = temperature

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        """The loss of a (global) batch: ``output.embedding`` [N, D] (part embeddings [N, D, P] are taken as one
        vector of D x P) with its ``labels`` [N]."""
        embeddings = output.embedding.flatten(1)
        if embeddings.dim() != 2 or labels.shape != embeddings.shape[:1]:
            raise ValueError(
                f"SupConLoss: expected embeddings (N, D) and labels (N,), found {tuple(embeddings.shape)} "
                f"and {tuple(labels.shape)}"
            )
        zero = embeddings.sum() * 0
        n = embeddings.shape[0]
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(n, dtype=torch.bool, device=embeddings.device)
        positive = same & ~eye
        if not positive.any() or same.all():
            return zero
        z = F.normalize(embeddings, p=2, dim=1)
        logits = -torch.cdist(z, z) / self.temperature
        logits = logits - logits.max(dim=1, keepdim=True).values.detach()  # stability; cancels out
        log_prob = logits - torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=1, keepdim=True)
        pos = positive.to(log_prob.dtype)
        per_anchor = -(log_prob * pos).sum(dim=1) / (pos.sum(dim=1) + torch.finfo(log_prob.dtype).tiny)
        kept = per_anchor > 0
        return per_anchor[kept].mean() if kept.any() else zero


def _parts(x: torch.Tensor) -> torch.Tensor:
    """[N, D] -> [N, D, 1]; part-based [N, D, P] unchanged."""
    return x.unsqueeze(-1) if x.dim() == 2 else x


def _average_nonzero(loss: torch.Tensor) -> torch.Tensor:
    """Per part (rows of [P, M]): the mean of the non-zero terms, 0 when all are zero; then the mean over parts."""
    count = (loss != 0).sum(-1)
    per_part = loss.sum(-1) / count.clamp_min(1)
    return per_part.mean()


class TripletLoss(nn.Module):
    """FastPoseGait's triplet loss on the embedding, Euclidean distance per part, margin ``margin``.

    ``mining``: ``batch_hard`` (per anchor: farthest positive, itself included, against nearest negative) or
    ``batch_all`` (every anchor, positive (the anchor itself included) and negative). Each part averages its
    non-zero hinge terms (0 if none); the loss is the mean over parts. [N, D] embeddings are one part.
    """

    MINING = ("batch_hard", "batch_all")

    def __init__(self, margin: float = 0.3, mining: str = "batch_hard"):
        super().__init__()
        if mining not in self.MINING:
            raise ConfigError("loss.mining", mining, f"one of {self.MINING}")
        self.margin = float(margin)
        self.mining = mining

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        emb = _parts(output.embedding)
        if emb.dim() != 3 or labels.shape != emb.shape[:1]:
            raise ValueError(
                f"TripletLoss: expected embedding [N, D] or [N, D, P] and labels [N], found "
                f"{tuple(output.embedding.shape)} and {tuple(labels.shape)}"
            )
        x = emb.permute(2, 0, 1).float()  # [P, N, D]
        sq = (x * x).sum(-1)
        dist = torch.sqrt(F.relu(sq[:, :, None] + sq[:, None, :] - 2 * x @ x.transpose(1, 2)))  # [P, N, N]
        same = labels[:, None] == labels[None, :]
        if self.mining == "batch_hard":
            hardest_positive = dist.masked_fill(~same, float("-inf")).amax(-1)
            hardest_negative = dist.masked_fill(same, float("inf")).amin(-1)
            return _average_nonzero(F.relu(hardest_positive - hardest_negative + self.margin))
        valid = same[:, :, None] & ~same[:, None, :]  # [anchor, positive, negative]
        hinge = F.relu(dist[:, :, :, None] - dist[:, :, None, :] + self.margin) * valid
        return _average_nonzero(hinge.flatten(1))


class CrossEntropyLoss(nn.Module):
    """Cross-entropy on ``logits * scale`` ([N, classes] or per part [N, classes, P], averaged over parts);
    ``label_smoothing`` as FastPoseGait's ``eps`` (0.1 when its ``label_smooth`` is on, else 0)."""

    def __init__(self, scale: float = 16.0, label_smoothing: float = 0.0):
        super().__init__()
        self.scale = float(scale)
        self.label_smoothing = float(label_smoothing)

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        if output.logits is None:
            raise ConfigError(
                "loss",
                "CrossEntropyLoss",
                "a loss the model can train: this model gives no logits",
                hint="use a model with a classifier (e.g. model=gpgait), or loss=triplet|supcon",
            )
        logits = _parts(output.logits)
        target = labels[:, None].expand(-1, logits.shape[-1])
        return F.cross_entropy(logits * self.scale, target, label_smoothing=self.label_smoothing)


class WeightedSum(nn.Module):
    """``sum_name weights[name] * losses[name](output, labels)``; the last terms are kept in ``last_terms``."""

    def __init__(self, losses: Mapping[str, nn.Module], weights: Mapping[str, float]):
        super().__init__()
        if set(losses) != set(weights):
            raise ConfigError("loss.weights", sorted(weights), f"one weight per loss term {sorted(losses)}")
        self.losses = nn.ModuleDict(dict(losses))
        self.weights = {name: float(weights[name]) for name in losses}
        self.last_terms: dict[str, torch.Tensor] = {}

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        terms = {name: loss(output, labels) for name, loss in self.losses.items()}
        self.last_terms = {name: term.detach() for name, term in terms.items()}
        return sum(self.weights[name] * term for name, term in terms.items())
