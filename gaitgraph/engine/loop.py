"""One training epoch: augment the global batch, take this rank's shard, multi-input features, SupCon step."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from tqdm.auto import tqdm

from gaitgraph.models.base import GaitModel
from gaitgraph.engine.distributed import DistContext, gather_global_batch, shard


@dataclass
class Precision:
    """Mixed precision: ``dtype`` None = float32; fp16 needs ``scaler`` (a GradScaler), bf16 does not."""

    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None


def features_of(
    x: torch.Tensor,
    augment: Callable[..., torch.Tensor],
    generator: torch.Generator | None,
    network: GaitModel,
    part: slice | None = None,
) -> torch.Tensor:
    """Augment a whole (global) batch with ``generator``, keep rows ``part``, build the model's input.

    Augmenting the global batch on every rank (it costs next to nothing) makes a run's random numbers
    independent of the number of ranks.
    """
    x = augment(x, generator=generator)
    if part is not None:
        x = x[part]
    return network.input_features(x)


def train_epoch(
    model: torch.nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    network: GaitModel,
    augment: Callable[..., torch.Tensor],
    loss_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any | None,
    step_scheduler_per_batch: bool,
    device: torch.device,
    grad_clip: float | None = None,
    on_step: Callable[[dict[str, float]], None] | None = None,
    desc: str = "train",
    disable_progress: bool = False,
    generator: torch.Generator | None = None,
    dist: DistContext | None = None,
    precision: Precision | None = None,
) -> dict[str, float]:
    """Train one epoch over global batches; returns mean loss, last learning rate and samples/s (global)."""
    dist = dist or DistContext()
    precision = precision or Precision()
    model.train()
    total_loss, total_samples = 0.0, 0
    start = time.perf_counter()
    bar = tqdm(batches, desc=desc, leave=False, disable=disable_progress or not dist.is_main, dynamic_ncols=True)
    for x, y in bar:
        x = x.to(device, non_blocking=True)
        y = y.to(device, non_blocking=True)
        part = shard(len(y), dist.rank, dist.world_size) if dist.distributed else None
        inputs = features_of(x, augment, generator, network, part)
        with torch.autocast(device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
            embedding = model(inputs).embedding
        embedding, labels = gather_global_batch(embedding.float(), y if part is None else y[part])
        loss = loss_fn(embedding, labels)
        optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks while each rank's loss reaches only its own shard's embeddings.
        scaled = loss * dist.world_size
        if precision.scaler is not None:
            precision.scaler.scale(scaled).backward()
            precision.scaler.unscale_(optimizer)
        else:
            scaled.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        if precision.scaler is not None:
            precision.scaler.step(optimizer)
            precision.scaler.update()
        else:
            optimizer.step()
        if scheduler is not None and step_scheduler_per_batch:
            scheduler.step()
        n = len(y)
        value = loss.item()
        total_loss += value * n
        total_samples += n
        rate = total_samples / (time.perf_counter() - start)
        lr = optimizer.param_groups[0]["lr"]
        bar.set_postfix(loss=f"{value:.3f}", lr=f"{lr:.2e}", sps=f"{rate:.0f}")
        if on_step is not None:
            on_step({"train/loss": value, "train/lr": lr, "train/samples_per_s": rate})
    if scheduler is not None and not step_scheduler_per_batch:
        scheduler.step()
    elapsed = time.perf_counter() - start
    return {
        "loss": total_loss / max(total_samples, 1),
        "lr": optimizer.param_groups[0]["lr"],
        "samples_per_s": total_samples / max(elapsed, 1e-9),
        "seconds": elapsed,
    }
