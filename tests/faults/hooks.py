"""Test callbacks for the fault tests, added with ``+callbacks.<name>._target_=tests.faults.hooks.<Class>``."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from gaitgraph.engine.callbacks import Callback


class SignalAtStep(Callback):
    """Send signal ``signum`` (a name: SIGTERM, SIGINT) to this process right after optimisation step ``step``; on
    rank ``rank`` only under DDP."""

    def __init__(self, step: int, signum: str, rank: int = 0) -> None:
        self.step = step
        self.signum = signal.Signals[signum]
        self.rank = rank

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step and trainer.ctx.rank == self.rank:
            os.kill(os.getpid(), self.signum)


class ExplodeGradientsAtStep(Callback):
    """From the step after ``step`` on, multiply the gradient of the first weight by ``factor`` (``inf`` makes the
    gradient norm non-finite): an exploding gradient the trainer must refuse before its optimizer step."""

    def __init__(self, step: int, factor: float) -> None:
        self.step = step
        self.factor = factor

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step:
            next(trainer.network.parameters()).register_hook(lambda grad: grad * self.factor)


class SaveWeightsAtStep(Callback):
    """Save the network's weights to ``path`` right after optimisation step ``step`` (after the run's own checkpoint
    of that step, before the callbacks added after this one): what the run held at that step."""

    def __init__(self, step: int, path: str) -> None:
        self.step = step
        self.path = path

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step:
            torch.save(trainer.network.state_dict(), self.path)
