"""Validation every N epochs and model selection on it: ``best.pt`` holds the weights of the best validation score.

Selection reads the validation split only; GaitGraph2's choice on the test split exists solely as the explicitly
named ``trainer.selection=legacy_test`` (the engine then hands the test split in here and labels every key so).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.engine.checkpoint import BEST

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer


class Selection(Callback):
    """Score the selection split every ``every`` epochs (and after the last one); keep the best as ``best.pt``.

    every: ``trainer.val_every`` (conf/callbacks/default.yaml reads it); the rest comes from the run
    (:func:`gaitgraph.engine.build.build_callbacks`):
    score: maps the unwrapped network to the selection metric (mean rank-1 of the chosen protocol).
    selection_key: the history/logger key, ``val/rank1`` (or ``test_selection/rank1`` for the legacy choice).
    save_best: False under weight averaging, whose final averaged weights are the result instead.
    """

    def __init__(self, score: Callable[[Any], float], every: int, selection_key: str, save_best: bool = True) -> None:
        self.score = score
        self.every = every
        self.key = selection_key
        self.save_best = save_best
        self.best = -math.inf
        self.best_epoch = 0

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        epoch = record["epoch"]
        if epoch % self.every and epoch != trainer.epochs:
            return
        if trainer.ctx.is_main:
            value = self.score(trainer.network)
            record[self.key] = value
            if value > self.best:
                self.best, self.best_epoch = value, epoch
                if self.save_best:
                    trainer.save_checkpoint(BEST)
            record[f"{self.key}_best"] = self.best
        trainer.ctx.barrier()

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = float(state.get("best", -math.inf))
        self.best_epoch = int(state.get("best_epoch", 0))
