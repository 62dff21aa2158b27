"""One training epoch: augment and build multi-input features on the device, SupCon step."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from gaitgraph.data.features import multi_input
from gaitgraph.data.keypoints import Skeleton


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    skeleton: Skeleton,
    features: str,
    augment: Callable[[torch.Tensor], torch.Tensor],
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    step_scheduler_per_batch: bool,
    device: torch.device,
    grad_clip: float | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
    disable_progress: bool = False,
) -> dict[str, float]:
    """Train one epoch; returns mean loss, last learning rate and samples/s."""
    model.train()
    total_loss, total_samples = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=desc, leave=False, disable=disable_progress, dynamic_ncols=True)
    for x, y in bar:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        x = multi_input(augment(x), skeleton, features)
        embedding, _ = model(x)
        loss = loss_fn(embedding, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        if scheduler is not None and step_scheduler_per_batch:
            scheduler.step()
        n = len(y)
        total_loss += loss.item() * n
        total_samples += n
        rate = total_samples / (time.perf_counter() - start)
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{lr:.2e}", sps=f"{rate:.0f}")
        if on_step is not None:
            on_step({"train/loss": loss.item(), "train/lr": lr, "train/samples_per_s": rate})
    if scheduler is not None and not step_scheduler_per_batch:
        scheduler.step()
    elapsed = time.perf_counter() - start
    return {
        "loss": total_loss / max(total_samples, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "samples_per_s": total_samples / max(elapsed, 1e-9),
        "seconds": elapsed,
    }
