"""Peak training memory, estimated before the first step, against what the machine (or GPU) has.

The estimate runs one forward pass of a copy of the network on the ``meta`` device (shapes only: no memory, no
compute) at the real per-rank batch size and sequence length, and counts the bytes autograd keeps for the
backward pass (saved-tensor hooks). Peak = weights + gradients + optimizer state + kept activations, times a
factor for what lives only briefly (the backward's gradient buffers), plus a fixed overhead. Under mixed precision
(``trainer.amp``) the pass emulates autocast's casts (:class:`AutocastOnMeta`: ``torch.autocast`` ignores ``meta``
tensors), so a bf16 step is planned with its own, about halved, activation bytes.
With activation recomputation only the input of each target the model declares at that level
(``GaitModel.recompute_targets``: whole blocks, or a wide step inside them) is kept, plus the largest target's
activations while it is recomputed.
``benchmarks/memory.py`` compares the estimate with measured peaks (ResGCN); tests/models/test_recompute.py
checks every family against one measured step.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from gaitgraph.errors import MemoryBudgetError
from gaitgraph.models.base import GaitModel

log = logging.getLogger(__name__)

GiB = 2**30
#: Central estimate = TRANSIENT_FACTOR x (kept activations + model state) + FIXED_OVERHEAD: fitted to the peaks
#: that benchmarks/memory.py measures on the CPU (n21-r8, batches 128-384 of 30-60 frames, plain and recomputed).
#: The overhead is the batch, its augmented copy and features, and what the allocator keeps (trainer.host_malloc).
TRANSIENT_FACTOR = 1.5
FIXED_OVERHEAD = 0.65e9
#: The measured peaks lie between 0.70x and 1.19x the central estimate (benchmarks/results/memory.json, every level;
#: the allocator's reuse varies from run to run: two steps with the same activation bytes peaked 0.3 GB apart).
#: Decisions plan for the upper end.
HEADROOM = 1.3
#: Bytes of optimizer state per parameter byte (Adam/AdamW: exp_avg and exp_avg_sq; SGD momentum needs fewer).
OPTIMIZER_STATES = 2


#: Recomputation levels, least memory saved first: ``trainer.recompute`` false, partial, true.
LEVELS = ("off", "partial", "full")
SETTINGS: dict[bool | str, str] = {False: "off", "partial": "partial", True: "full"}


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes: model state (weights, gradients, optimizer state), and the activations kept for the backward pass
    plain, with partial and with full recomputation (a level the family does not declare keeps the plain bytes)."""

    model_state: int
    activations: int
    activations_partial: int
    activations_recomputed: int

    def peak(self, level: str) -> int:
        """Bytes one training step at recomputation ``level`` (:data:`LEVELS`) may take at its peak: the central
        estimate with :data:`HEADROOM`."""
        kept = dict(zip(LEVELS, (self.activations, self.activations_partial, self.activations_recomputed)))[level]
        return int(((self.model_state + kept) * TRANSIENT_FACTOR + FIXED_OVERHEAD) * HEADROOM)


def estimate(
    network: GaitModel, batch_size: int, sequence_length: int, amp: torch.dtype | None = None
) -> MemoryEstimate:
    """Estimate one training step of ``network`` on ``batch_size`` windows of ``sequence_length`` frames, under
    autocast to ``amp`` (``trainer.amp``'s dtype; None = float32)."""
    params = sum(p.numel() * p.element_size() for p in network.parameters())
    meta = _meta_copy(network).train()
    poses = torch.empty(batch_size, sequence_length, network.skeleton.num_joints, 3, device="meta")
    kept = [0]
    seen: set[int] = set()

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage._cdata not in seen:  # a tensor saved by several ops (or a view of one) is kept once
            seen.add(storage._cdata)
            kept[0] += storage.nbytes()
        return tensor

    # (bytes kept inside, bytes of its inputs) per call of each level's targets; the copy is thrown away, so its
    # targets are wrapped for counting and never restored. Full-level blocks contain the partial-level steps.
    calls: dict[str, list[tuple[int, int]]] = {"partial": [], "full": []}
    for level, rows in calls.items():
        for module, method in meta.recompute_targets(level):
            setattr(module, method, _counted(getattr(module, method), rows, kept))
    precision = AutocastOnMeta(amp) if amp is not None else contextlib.nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), precision:
        meta(meta.input_features(poses))
    partial, full = (_kept_recomputing(kept[0], calls[level]) for level in ("partial", "full"))
    return MemoryEstimate(params * (2 + OPTIMIZER_STATES), kept[0], partial, full)


class AutocastOnMeta(TorchFunctionMode):
    """Autocast's casts on ``meta`` tensors, which ``torch.autocast`` leaves alone: the ops it runs in the lower
    precision get their floating-point arguments in ``dtype``, so what autograd keeps has the bytes of an autocast
    step (bf16 halves most activations). Everything else runs in the dtype it is given, as under autocast; the few
    ops autocast forces to float32 (losses, mostly) are not emulated."""

    def __init__(self, dtype: torch.dtype) -> None:
        super().__init__()
        self.dtype = dtype

    def __torch_function__(
        self, func: Callable[..., Any], types: tuple[type, ...], args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func in LOWER_PRECISION_OPS:
            args, kwargs = self._cast(args), {k: self._cast(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)

    def _cast(self, value: Any) -> Any:
        """``value`` with its floating-point tensors (also inside tuples and lists: einsum's operands) in dtype."""
        if isinstance(value, (tuple, list)):
            return type(value)(self._cast(v) for v in value)
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != self.dtype:
            return value.to(self.dtype)
        return value


#: The ops autocast runs in the lower precision (the CPU and CUDA lists share these), as Python calls reach them;
#: einsum is not listed by autocast, but the batched matmuls it runs are.
LOWER_PRECISION_OPS = frozenset(
    {
        torch.conv1d,
        torch.conv2d,
        torch.conv3d,
        torch.conv_transpose1d,
        torch.conv_transpose2d,
        torch.conv_transpose3d,
        F.linear,
        torch.matmul,
        torch.Tensor.matmul,
        torch.Tensor.__matmul__,
        torch.Tensor.__rmatmul__,
        torch.mm,
        torch.Tensor.mm,
        torch.bmm,
        torch.Tensor.bmm,
        torch.addmm,
        torch.baddbmm,
        torch.addbmm,
        torch.einsum,
        torch.prelu,
        F.scaled_dot_product_attention,
    }
)


def _counted(plain: Callable[..., Any], rows: list[tuple[int, int]], kept: list[int]) -> Callable[..., Any]:
    """``plain``, recording per call the bytes autograd kept during it and the bytes of its tensor inputs."""

    def call(*args: Any) -> Any:
        start = kept[0]
        out = plain(*args)
        rows.append((kept[0] - start, sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))))
        return out

    return call


def _kept_recomputing(kept: int, calls: list[tuple[int, int]]) -> int:
    """Bytes kept when each call's inside is recomputed: its inputs instead, plus the largest inside while it is
    recomputed (no call: nothing changes)."""
    inside = [row[0] for row in calls]
    return kept - sum(inside) + sum(row[1] for row in calls) + max(inside, default=0)


#: This process's estimates by what built their network (:func:`estimate_once`).
_estimates: dict[str, MemoryEstimate] = {}


def estimate_once(
    key: str, network: GaitModel, batch_size: int, sequence_length: int, amp: torch.dtype | None = None
) -> MemoryEstimate:
    """:func:`estimate`, once per ``key`` in this process. ``key`` must name everything the network and the step
    were built from (the model's config, the joint layout, the batch shape, the precision): the forward pass on
    ``meta`` costs tenths of a second in Python, and sweep trials that change no architecture would repeat it for the
    same bytes."""
    if key not in _estimates:
        _estimates[key] = estimate(network, batch_size, sequence_length, amp)
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


def choose_recompute(setting: str | bool, estimate_: MemoryEstimate, budget: int, what: str) -> str:
    """The recomputation level (:data:`LEVELS`) for ``trainer.recompute`` (false, partial, true or auto: the first
    level that fits) and the memory ``budget``; raises :class:`MemoryBudgetError` when the chosen level does not fit.

    ``what`` describes the step (model, batch, length) for the messages.
    """
    fitting = [level for level in LEVELS if estimate_.peak(level) <= budget]
    level = SETTINGS[setting] if setting != "auto" else (fitting or [LEVELS[-1]])[0]
    need = estimate_.peak(level)
    if need <= budget:
        if setting == "auto" and level != "off":
            log.warning(
                "memory: %s may need up to %.1f GB, %.1f GB are free: switched trainer.recompute to %s (about %.1f GB)",
                what,
                estimate_.peak("off") / 1e9,
                budget / 1e9,
                _setting(level),
                need / 1e9,
            )
        return level
    ways = [
        f"trainer.recompute={_setting(deeper)} (about {estimate_.peak(deeper) / 1e9:.1f} GB)"
        for deeper in LEVELS[LEVELS.index(level) + 1 :]
        if estimate_.peak(deeper) < need
    ]
    ways += ["a smaller trainer.batch_size or dataset.sequence_length", "trainer.memory.limit_gb to assert more"]
    raise MemoryBudgetError(
        f"{what} may need up to {need / 1e9:.1f} GB at its peak, but only {budget / 1e9:.1f} GB are free; stopped "
        f"before training. Ways out: {'; '.join(ways)}."
    )


def _setting(level: str) -> str:
    """The ``trainer.recompute`` value that asks for ``level`` (:data:`SETTINGS` read backwards), as typed."""
    return next(str(value).lower() for value, named in SETTINGS.items() if named == level)
