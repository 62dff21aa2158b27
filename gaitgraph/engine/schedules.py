"""Learning-rate schedules built as ``scheduler(optimizer, total_steps=...)``, the interface train() uses."""

from __future__ import annotations

import torch


def cosine(
    optimizer: torch.optim.Optimizer, total_steps: int, eta_min: float = 0.0
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay from the optimizer's lr to ``eta_min`` over ``total_steps`` scheduler steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=eta_min)
