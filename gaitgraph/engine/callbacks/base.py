"""The hooks a training callback may implement; the Trainer calls them in list order."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the Trainer imports this module; the hooks only take it as an argument
    from gaitgraph.engine.trainer import Trainer


class Callback:
    """Base of every callback: each hook does nothing unless overridden.

    A callback that keeps state across epochs returns it from :meth:`state_dict` (plain containers and tensors,
    so checkpoints load with ``weights_only=True``); the TrainState saves and restores it under the callback's
    name.
    """

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first epoch (also when resuming)."""

    def on_train_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        """Before the first batch of 0-based ``epoch`` (also when resuming inside it)."""

    def on_train_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """After an optimisation step; ``metrics`` holds that step's loss, learning rate and samples/s."""

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        """After the last batch of an epoch; ``record`` is the epoch's history entry (callbacks may add keys)."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """After the last epoch."""

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        """When training stops on an error (the error is re-raised afterwards)."""

    def state_dict(self) -> dict[str, Any]:
        """What resume must restore (empty by default)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
