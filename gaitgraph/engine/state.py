"""Everything a resumed run needs to continue exactly where it stopped, in one object.

A checkpoint is ``TrainState.state_dict()``: the state dicts of the model, optimizer, scheduler, grad scaler,
batch plan and every callback, the RNG states, the counters (epoch, step, the running sums of the current epoch)
and the resolved config it was trained with. ``load_state_dict`` restores all of it; nothing else is restored
anywhere, so a field added here is a field that resume honours.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from gaitgraph.data.batches import WindowBatches
from gaitgraph.models.base import GaitModel

if TYPE_CHECKING:  # callbacks import this module for the type only
    from gaitgraph.engine.callbacks import Callback

#: Bump when the checkpoint layout changes; older checkpoints are refused with a clear message.
CHECKPOINT_FORMAT = 2


def rng_state() -> dict[str, Any]:
    """Python and torch RNG states (numpy randomness lives in explicit Generators saved by their owners)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class TrainState:
    """The parts of a run that change while it trains, and the counters that say where it is."""

    model: GaitModel
    optimizer: torch.optim.Optimizer
    batches: WindowBatches
    augment_rng: torch.Generator
    config: dict[str, Any]
    scheduler: Any | None = None
    scaler: torch.amp.GradScaler | None = None
    callbacks: dict[str, Callback] = field(default_factory=dict)
    epoch: int = 0  # epochs completed
    step: int = 0  # optimisation steps completed
    epoch_loss_sum: float = 0.0  # sum of loss x samples over the current epoch's steps so far
    epoch_samples: int = 0
    epoch_seconds: float = 0.0  # training time of the current epoch so far (for samples/s across a resume)
    history: list[dict[str, Any]] = field(default_factory=list)  # one record per completed epoch

    def state_dict(self) -> dict[str, Any]:
        """The checkpoint: plain containers and tensors only, so it loads with ``weights_only=True``."""
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "batches": self.batches.state_dict(),
            "rng": rng_state(),
            "augment_rng": self.augment_rng.get_state().cpu(),
            "callbacks": {name: cb.state_dict() for name, cb in self.callbacks.items()},
            "epoch": self.epoch,
            "step": self.step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_samples": self.epoch_samples,
            "epoch_seconds": self.epoch_seconds,
            "history": list(self.history),
            "config": self.config,
        }

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore a checkpoint written by :meth:`state_dict` (its config was checked by the caller).

        Callbacks are restored first: weight averaging replaces the optimizer's schedule when it is active,
        and the optimizer's own saved state must win over that.
        """
        self.model.load_state_dict(saved["model"])
        for name, cb in self.callbacks.items():
            cb.load_state_dict(saved["callbacks"].get(name, {}))
        self.optimizer.load_state_dict(saved["optimizer"])
        if self.scheduler is not None and saved["scheduler"] is not None:
            self.scheduler.load_state_dict(saved["scheduler"])
        if self.scaler is not None and saved["scaler"] is not None:
            self.scaler.load_state_dict(saved["scaler"])
        self.batches.load_state_dict(saved["batches"])
        set_rng_state(saved["rng"])
        self.augment_rng.set_state(saved["augment_rng"].to(self.augment_rng.get_state().device))
        for key in ("epoch", "step", "epoch_loss_sum", "epoch_samples", "epoch_seconds"):
            setattr(self, key, type(getattr(self, key))(saved[key]))
        self.history = list(saved["history"])

    def start_epoch_counters(self) -> None:
        """Zero the running sums at the start of an epoch (not when resuming inside one)."""
        self.epoch_loss_sum, self.epoch_samples, self.epoch_seconds = 0.0, 0, 0.0
