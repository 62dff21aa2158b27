"""Judging a step's gradients before the optimizer applies them (docs/design.md#what-makes-a-run-trustworthy).

A step is divergence, and is not applied, when its total gradient norm is not finite, or, without a gradient clip,
when it is more than ``trainer.grad_spike_factor`` times the median norm of the last :data:`WINDOW` applied steps
(judged once :data:`WARMUP` steps are known; the history starts empty at every start and resume). With a clip the
clip handles spikes, and only a non-finite norm stops the run. Under fp16 the GradScaler's own rule holds instead:
a non-finite norm means its scale was too high, the scaler skips that step and lowers the scale.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable

import torch

#: Applied steps whose norms make the reference median.
WINDOW = 100
#: Norms known before a spike is judged (the first steps of a run have nothing to compare with).
WARMUP = 10


def total_grad_norm(parameters: Iterable[torch.nn.Parameter]) -> torch.Tensor:
    """The L2 norm of all gradients together (as ``clip_grad_norm_`` computes it, without clipping)."""
    return torch.nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])


class GradNormWatch:
    """Keeps the recent gradient norms and says whether a step may be applied (see the module docstring)."""

    def __init__(self, spike_factor: float | None, clipped: bool, scaled: bool) -> None:
        self.spike_factor = spike_factor
        self.clipped = clipped  # a gradient clip bounds the applied update: spikes are its job
        self.scaled = scaled  # fp16 with a GradScaler: non-finite gradients are skipped by the scaler
        self.recent: deque[float] = deque(maxlen=WINDOW)

    def judge(self, norm: float) -> str | None:
        """None when the step with gradient norm ``norm`` may be applied; otherwise what went wrong."""
        if not math.isfinite(norm):
            return None if self.scaled else f"the gradient norm became {norm}"
        if self.spike_factor and not self.clipped and len(self.recent) >= WARMUP:
            median = statistics.median(self.recent)
            if median > 0 and norm > self.spike_factor * median:
                return (
                    f"the gradient norm jumped to {norm:.3g}, {norm / median:.3g} x the median {median:.3g} of the "
                    f"last {len(self.recent)} steps (trainer.grad_spike_factor={self.spike_factor:g})"
                )
        self.recent.append(norm)
        return None
