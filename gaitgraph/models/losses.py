"""Supervised contrastive loss as GaitGraph2 trains with it (PML SupConLoss + LpDistance, reference §5)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


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
            raise ValueError(f"loss.temperature: expected > 0, found {temperature}")
        self.temperature = temperature

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
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


def gather_global_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Under DDP, the embeddings and labels of every rank concatenated in rank order (the global batch).

    Only this rank's part carries gradient (the others are copies); with DDP averaging gradients over ranks,
    scaling the loss by the world size gives exactly the single-process gradient of the global-batch loss.
    Ranks may hold different batch sizes (an uneven last batch). Outside DDP the inputs come back unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, labels
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([len(labels)], device=embeddings.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    pad = longest - len(labels)
    padded_emb = F.pad(embeddings.detach(), (0, 0, 0, pad))
    padded_lab = F.pad(labels, (0, pad))
    all_emb = [torch.empty_like(padded_emb) for _ in range(world)]
    all_lab = [torch.empty_like(padded_lab) for _ in range(world)]
    dist.all_gather(all_emb, padded_emb)
    dist.all_gather(all_lab, padded_lab)
    parts = [e[: int(s.item())] for e, s in zip(all_emb, sizes)]
    parts[rank] = embeddings
    return torch.cat(parts), torch.cat([lab[: int(s.item())] for lab, s in zip(all_lab, sizes)])
