"""Training losses. Each is an ``nn.Module`` called as ``loss(output, labels)`` with a :class:`ModelOutput` and the
labels of the GLOBAL batch (under DDP the engine gathers every rank's outputs first).

Supervised contrastive loss as GaitGraph2 trains with it (PML SupConLoss + LpDistance, docs/original-network.md#supcon-loss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.models.base import ModelOutput
from gaitgraph.errors import ConfigError


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
        """The loss of a (global) batch: ``output.embedding`` [N, D] with its ``labels`` [N]."""
        embeddings = output.embedding
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

