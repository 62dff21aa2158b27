"""Test callbacks, added to a run with ``+callbacks.<name>={_target_: tests.engine.hooks.<Class>, ...}``."""

from __future__ import annotations

import os
import signal
from typing import Any

import torch

from gaitgraph.engine.callbacks import Callback


class KillAtStep(Callback):
    """SIGKILL this process right after optimisation step ``step`` (its checkpoint, if any, is written first)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


class PoisonAtStep(Callback):
    """After step ``step`` (and its checkpoint), set one weight to NaN: the next step's loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step:
            with torch.no_grad():
                next(trainer.network.parameters()).view(-1)[0] = float("nan")


class Stopped(Exception):
    """What :class:`StopAtStep` raises."""


class StopAtStep(Callback):
    """Raise :class:`Stopped` right after optimisation step ``step`` (its checkpoint, if any, is written first): a
    run ends there as if killed, in a process that goes on (in-process tests)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        if trainer.state.step == self.step:
            raise Stopped(f"stopped after step {self.step}")
