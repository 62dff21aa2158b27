"""Stochastic weight averaging as a callback (GaitGraph2's OUMVLP recipe; see gaitgraph/engine/swa.py).

From the start epoch on, SWALR replaces the step scheduler, the weights are averaged at each epoch end, and at
the end of fit the averaged weights (BatchNorm statistics recomputed over the training batches) replace the
model's: they are what is saved as ``last.pt`` and ``best.pt`` and evaluated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.engine.swa import WeightAveraging

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer


class Averaging(Callback):
    """Owns a :class:`WeightAveraging` of ``network`` for the run; its state is part of every checkpoint.

    start_fraction, lr, anneal_epochs: ``trainer.swa.*`` (conf/callbacks/default.yaml reads them); ``network``,
    ``optimizer`` and ``epochs`` come from the run (:func:`gaitgraph.engine.build.build_callbacks`).
    """

    def __init__(
        self,
        network: torch.nn.Module,
        optimizer: Any,
        epochs: int,
        start_fraction: float = 0.8,
        lr: float | None = None,
        anneal_epochs: int = 10,
    ) -> None:
        self.averaging = WeightAveraging(network, epochs, start_fraction, lr, anneal_epochs)
        self.optimizer = optimizer  # SWALR is rebuilt on it when a checkpoint inside the SWA phase is restored
        self.applied = False

    def on_train_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        active = self.averaging.active(epoch)
        if active and self.averaging.scheduler is None:
            self.averaging.begin(trainer.state.optimizer)
        trainer.scheduler_enabled = not active

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.averaging.active(record["epoch"] - 1):
            self.averaging.end_epoch(trainer.network)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.applied:  # a finished run that was resumed
            return
        averaged = self.averaging.finalize(trainer.training_inputs())
        trainer.network.load_state_dict(averaged.state_dict())
        self.applied = True

    def state_dict(self) -> dict[str, Any]:
        return {**self.averaging.state_dict(), "applied": self.applied}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        self.averaging.load_state_dict(state, self.optimizer)
        self.applied = bool(state.get("applied", False))
