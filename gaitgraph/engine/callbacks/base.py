"""The hooks a training callback may implement; the Trainer calls them in list order.

A run's callbacks are the ``callbacks`` config group (conf/callbacks/default.yaml): one node per callback, its
class as ``_target_`` and its plain settings, in call order; ``callbacks.<name>=null`` (or ``enabled: false``)
switches one off and ``+callbacks.<name>._target_=my.module.MyCallback`` adds one after the built-ins. What only
the run has is handed in by :func:`gaitgraph.engine.build.build_callbacks` to the constructor parameters named
like it: ``network``, ``optimizer``, ``epochs``, ``logger``, ``score``, ``selection_key``, ``save_best``,
``final_is_best``.

Per optimisation step the order is: forward and loss, backward, :meth:`Callback.on_after_backward`, the gradient
clip and the divergence check, :meth:`Callback.on_before_optimizer_step`, the step, the scheduler step,
:meth:`Callback.on_train_batch_end`.
"""

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

    def on_after_backward(self, trainer: Trainer) -> None:
        """After the backward pass: every parameter's ``.grad`` holds this step's gradient (unscaled under fp16,
        averaged over the ranks under DDP), not yet clipped nor checked for divergence. Changing a gradient here
        changes what the clip and the check see."""

    def on_before_optimizer_step(self, trainer: Trainer, optimizer: Any) -> None:
        """After the gradients were clipped and judged finite, right before ``optimizer`` steps (a step the
        divergence check refused never gets here)."""

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
