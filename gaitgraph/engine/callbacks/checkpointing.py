"""Write ``last.pt`` every N steps and at each epoch end, and ``best.pt`` when there is nothing to select on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.engine.checkpoint import BEST, LAST

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer


class Checkpointing(Callback):
    """Periodic checkpoints of the whole TrainState (rank 0 writes; see
    :class:`~gaitgraph.engine.checkpoint.Checkpointer`).

    every_steps: also write ``last.pt`` every this many optimisation steps inside an epoch (None: epoch ends only).
    final_is_best: at the end of fit, the final weights are ``best.pt`` (nothing selects, or weight averaging);
    the run decides it (:func:`gaitgraph.engine.build.build_callbacks`).
    """

    def __init__(self, every_steps: int | None = None, final_is_best: bool = True) -> None:
        self.every_steps = every_steps
        self.final_is_best = final_is_best

    def on_train_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        # The last batch of an epoch is covered by the end-of-epoch checkpoint.
        if self.every_steps and trainer.state.step % self.every_steps == 0 and trainer.state.batches.in_epoch:
            trainer.save_checkpoint(LAST)

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        trainer.save_checkpoint(LAST)

    def on_fit_end(self, trainer: Trainer) -> None:
        trainer.save_checkpoint(LAST, *([BEST] if self.final_is_best else []))
