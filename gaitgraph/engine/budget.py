"""Peak training memory, estimated before the first step, against what the machine (or GPU) has.

The estimate runs one forward pass of a copy of the network on the ``meta`` device (shapes only: no memory, no
compute) at the real per-rank batch size and sequence length, and counts the bytes autograd keeps for the
backward pass (saved-tensor hooks). Peak = weights + gradients + optimizer state + kept activations, times a
factor for what lives only briefly (the backward's gradient buffers), plus a fixed overhead.
With activation recomputation only the input of each block the model declares recomputable
(``GaitModel.recomputed_modules``) is kept, plus the largest block's activations while it is recomputed.
``benchmarks/memory.py`` compares the estimate with measured peaks (ResGCN); tests/models/test_recompute.py
checks every family against one measured step.
"""

from __future__ import annotations

import copy
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from gaitgraph.errors import MemoryBudgetError
from gaitgraph.models.base import GaitModel

log = logging.getLogger(__name__)

GiB = 2**30
#: Central estimate = TRANSIENT_FACTOR x (kept activations + model state) + FIXED_OVERHEAD: fitted to the peaks
#: that benchmarks/memory.py measures on the CPU (n21-r8, batches 128-384 of 30-60 frames, plain and recomputed).
#: The overhead is the batch, its augmented copy and features, and what the allocator keeps (trainer.host_malloc).
TRANSIENT_FACTOR = 1.5
FIXED_OVERHEAD = 0.65e9
#: The measured peaks lie between 0.84x and 1.31x the central estimate (the allocator's reuse varies from run to
#: run: two steps with the same activation bytes peaked 0.3 GB apart). Decisions plan for the upper end.
HEADROOM = 1.3
#: Bytes of optimizer state per parameter byte (Adam/AdamW: exp_avg and exp_avg_sq; SGD momentum needs fewer).
OPTIMIZER_STATES = 2


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes: model state (weights, gradients, optimizer state), kept activations plain and recomputed."""

    model_state: int
    activations: int
    activations_recomputed: int

    def peak(self, recompute: bool) -> int:
        """Bytes one training step may take at its peak: the central estimate with :data:`HEADROOM`."""
        kept = self.activations_recomputed if recompute else self.activations
        return int(((self.model_state + kept) * TRANSIENT_FACTOR + FIXED_OVERHEAD) * HEADROOM)


def estimate(network: GaitModel, batch_size: int, sequence_length: int) -> MemoryEstimate:
    """Estimate one training step of ``network`` on ``batch_size`` windows of ``sequence_length`` frames."""
    params = sum(p.numel() * p.element_size() for p in network.parameters())
    meta = _meta_copy(network).train()
    poses = torch.empty(batch_size, sequence_length, network.skeleton.num_joints, 3, device="meta")
    kept = [0]
    seen: set[int] = set()
    per_module: list[int] = []
    inputs_kept: list[int] = []

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in seen:  # a tensor saved by several ops (or a view of one) is kept once
            seen.add(storage._cdata)
            kept[0] += storage.nbytes()
        return tensor

    def before(module: nn.Module, args: tuple) -> None:
        per_module.append(kept[0])
        inputs_kept.append(sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor)))

    def after(module: nn.Module, args: tuple, output: object) -> None:
        per_module[-1] = kept[0] - per_module[-1]

    blocks = meta.recomputed_modules()
    hooks = [m.register_forward_pre_hook(before) for m in blocks] + [m.register_forward_hook(after) for m in blocks]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            meta(meta.input_features(poses))
    finally:
        for hook in hooks:
            hook.remove()
    recomputed = kept[0] - sum(per_module) + sum(inputs_kept) + max(per_module, default=0)
    return MemoryEstimate(params * (2 + OPTIMIZER_STATES), kept[0], recomputed)


#: This process's estimates by what built their network (:func:`estimate_once`).
_estimates: dict[str, MemoryEstimate] = {}


def estimate_once(key: str, network: GaitModel, batch_size: int, sequence_length: int) -> MemoryEstimate:
    """:func:`estimate`, once per ``key`` in this process. ``key`` must name everything the network and the step
    were built from (the model's config, the joint layout, the batch shape): the forward pass on ``meta`` costs
    tenths of a second in Python, and sweep trials that change no architecture would repeat it for the same bytes."""
    if key not in _estimates:
        _estimates[key] = estimate(network, batch_size, sequence_length)
    return _estimates[key]


def _meta_copy(network: nn.Module) -> nn.Module:
    """A copy of ``network`` whose parameters and buffers are on the ``meta`` device, as ``deepcopy(...).to("meta")``
    gives, without copying their values first (that copy was most of the copy's time)."""
    memo: dict[int, torch.Tensor] = {}
    for param in network.parameters():
        memo[id(param)] = nn.Parameter(torch.empty_like(param, device="meta"), requires_grad=param.requires_grad)
    for buffer in network.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(network, memo)


def available_bytes(device: torch.device) -> int:
    """Free memory now: the GPU's free memory, or on the CPU the smaller of MemAvailable and the cgroup's room."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    free = _meminfo_available()
    limit, used = Path("/sys/fs/cgroup/memory.max"), Path("/sys/fs/cgroup/memory.current")
    if limit.is_file() and used.is_file() and limit.read_text().strip() != "max":
        free = min(free, int(limit.read_text()) - int(used.read_text()))
    return free


def _meminfo_available() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def choose_recompute(
    setting: str | bool, estimate_: MemoryEstimate, budget: int, can_recompute: bool, what: str
) -> bool:
    """Whether to recompute activations, given ``trainer.recompute`` (true, false or auto) and
    the memory ``budget``; raises :class:`MemoryBudgetError` when even the chosen way does not fit.

    ``what`` describes the step (model, batch, length) for the messages.
    """
    plain, recomputed = estimate_.peak(False), estimate_.peak(True)
    recompute = setting is True or (setting == "auto" and plain > budget and can_recompute)
    need = recomputed if recompute else plain
    if need <= budget:
        if recompute and setting == "auto":
            log.warning(
                "memory: %s may need up to %.1f GB, %.1f GB are free: switched trainer.recompute on (about %.1f GB)",
                what,
                plain / 1e9,
                budget / 1e9,
                recomputed / 1e9,
            )
        return recompute
    ways = [] if recompute or not can_recompute else [f"trainer.recompute=true (about {recomputed / 1e9:.1f} GB)"]
    ways += ["a smaller trainer.batch_size or dataset.sequence_length", "trainer.memory.limit_gb to assert more"]
    raise MemoryBudgetError(
        f"{what} may need up to {need / 1e9:.1f} GB at its peak, but only {budget / 1e9:.1f} GB are free; stopped "
        f"before training. Ways out: {'; '.join(ways)}."
    )
