"""SWA as GaitGraph2 used it on OUMVLP (PyTorch Lightning 1.6 defaults, docs/original-network.md#training-recipe).

From epoch ``int(start_fraction * epochs)`` on, the step scheduler is replaced by SWALR (cosine annealing over
``anneal_epochs`` epochs from the current lr to ``lr``; ``lr=None`` keeps the current lr), the weights are
averaged once per epoch, and at the end the BatchNorm statistics of the averaged model are recomputed with one
pass over the training batches. The averaged model is what gets evaluated and saved.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import torch
from torch.optim.swa_utils import SWALR, AveragedModel, update_bn

from gaitgraph.errors import ConfigError


class WeightAveraging:
    """SWA bookkeeping for one run: averaged weights, the SWALR schedule and their checkpoint state."""

    def __init__(
        self,
        model: torch.nn.Module,
        epochs: int,
        start_fraction: float = 0.8,
        lr: float | None = None,
        anneal_epochs: int = 10,
    ):
        if not 0.0 <= start_fraction < 1.0:
            raise ConfigError("trainer.swa.start_fraction", start_fraction, "a fraction in [0, 1)")
        self.start_epoch = int(start_fraction * epochs)
        self.lr = lr
        self.anneal_epochs = int(anneal_epochs)
        self.averaged = AveragedModel(model)
        self.scheduler: SWALR | None = None

    def active(self, epoch: int) -> bool:
        """Whether 0-based ``epoch`` trains under SWA."""
        return epoch >= self.start_epoch

    def begin(self, optimizer: torch.optim.Optimizer) -> None:
        """Switch ``optimizer`` to the SWA schedule (call once, at the first SWA epoch)."""
        lrs = [g["lr"] for g in optimizer.param_groups] if self.lr is None else self.lr
        self.scheduler = SWALR(optimizer, swa_lr=lrs, anneal_epochs=self.anneal_epochs, anneal_strategy="cos")

    def end_epoch(self, model: torch.nn.Module) -> None:
        """Average ``model`` in and advance the SWA schedule."""
        self.averaged.update_parameters(model)
        self.scheduler.step()

    def finalize(self, inputs: Iterable[torch.Tensor]) -> torch.nn.Module:
        """Recompute the averaged model's BatchNorm statistics over ``inputs``; returns the averaged network."""
        network = self.averaged.module
        update_bn(inputs, network)
        return network

    def state_dict(self) -> dict[str, Any]:
        return {
            "averaged": self.averaged.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any], optimizer: torch.optim.Optimizer) -> None:
        """Restore; call BEFORE loading the optimizer state, since creating SWALR changes the optimizer's lr."""
        self.averaged.load_state_dict(state["averaged"])
        if state["scheduler"] is not None:
            self.begin(optimizer)
            self.scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))
