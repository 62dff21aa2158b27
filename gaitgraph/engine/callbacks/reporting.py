"""What a run tells while it trains: metrics to the trackers, one line per epoch in train.log, progress."""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.progress import LineProgress, duration, progress

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer

log = logging.getLogger(__name__)


class MetricLogging(Callback):
    """Every step's ``train/*`` values and every epoch's record go to the logger (rank 0), and the epoch record
    as one line to the log (train.log): loss, samples/s and any validation score with its best so far.

    The record's keys that every step already logged (``train/lr``, ``train/samples_per_s``: at the epoch's last
    step they hold the same values) are left out of the epoch's tracker call, so each scalar has one point per
    step."""

    #: steps timed before the budget line's estimate of the time left (the first one pays for the warm-up)
    TIMED_STEPS = 3

    def __init__(self, logger: Any) -> None:
        self.logger = logger
        self.per_step: set[str] = set()
        self.budget = (0, 0, 0.0)  # (total steps, step at the start, when it started)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step, what the budget costs: ``budget: 6 steps per epoch x 10 epochs = 60 steps``."""
        per_epoch, start = len(trainer.state.batches), trainer.state.step
        total = trainer.epochs * per_epoch
        resumed = f", {start} done before this resume" if start else ""
        log.info("budget: %d steps per epoch x %d epochs = %d steps%s", per_epoch, trainer.epochs, total, resumed)
        self.budget = (total, start, time.monotonic())

    def on_train_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self.per_step.update(metrics)
        self.logger.log_metrics(metrics, step=trainer.state.step)
        total, start, began = self.budget
        done = trainer.state.step - start
        if done == min(self.TIMED_STEPS, total - start):
            took = time.monotonic() - began
            left = took / done * (total - trainer.state.step)
            log.info(
                "budget: %d steps took %s, about %s of training left (validations and the test evaluation besides)",
                done,
                duration(took),
                duration(left),
            )

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        epoch = {k: v for k, v in record.items() if k not in self.per_step}
        self.logger.log_metrics(epoch, step=trainer.state.step)
        log.info("epoch %d/%d: %s", record["epoch"], trainer.epochs, describe(record))


def describe(record: dict[str, Any]) -> str:
    """``train/loss_epoch 3.214, val/rank1 55.0% (best 60.0%), 1234 samples/s`` from an epoch record."""
    parts = []
    for key, value in record.items():
        if key in ("epoch", "train/epoch_seconds") or not isinstance(value, float) or key.endswith("_best"):
            continue
        if "rank1" in key or "mAP" in key:
            best = record.get(f"{key}_best")
            parts.append(f"{key} {value * 100:.1f}%" + (f" (best {best * 100:.1f}%)" if best is not None else ""))
        elif key.endswith("samples_per_s"):
            parts.append(f"{value:.0f} samples/s")
        elif math.isfinite(value):
            parts.append(f"{key} {value:.4g}")
    return ", ".join(parts)


class Progress(Callback):
    """The run's progress (rank 0), through :func:`gaitgraph.progress.progress`: one reporter counting the steps of
    the whole run (so its ETA is the run's), on a terminal with a bar per epoch below it; in a file one line now
    and then with epoch, loss, learning rate, samples/s and the last validation rank-1."""

    def __init__(self) -> None:
        self.run: Any = None
        self.batches: Any = None
        self.latest: dict[str, str] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        per_epoch = len(trainer.state.batches)
        self.run = progress(
            total=trainer.epochs * per_epoch,
            initial=trainer.state.step,
            desc="train",
            unit="step",
            enabled=trainer.ctx.is_main,
            leave=True,
        )

    def on_train_epoch_start(self, trainer: Trainer, epoch: int) -> None:
        self.latest["epoch"] = f"{epoch + 1}/{trainer.epochs}"
        if isinstance(self.run, LineProgress):
            return  # in a file the run's line says which epoch it is
        batches = trainer.state.batches
        self.batches = progress(
            total=len(batches),
            initial=batches.position if batches.in_epoch else 0,
            desc=f"epoch {epoch + 1}",
            unit="batch",
            enabled=trainer.ctx.is_main,
        )

    def on_train_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        step = {
            "loss": f"{metrics['train/loss']:.3f}",
            "lr": f"{metrics['train/lr']:.2e}",
            "samples/s": f"{metrics['train/samples_per_s']:.0f}",
        }
        if self.batches is not None:
            self.batches.set_postfix(step)
            self.batches.update(1)
        self.run.set_postfix({**self.latest, **step} if self.batches is None else self.latest)
        self.run.update(1)

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if self.batches is not None:
            self.batches.close()
            self.batches = None
        self.latest["loss_epoch"] = f"{record['train/loss_epoch']:.3f}"
        self.latest.update({k: f"{v * 100:.1f}%" for k, v in record.items() if k.endswith("rank1")})
        self.run.set_postfix(self.latest)

    def on_fit_end(self, trainer: Trainer) -> None:
        self._close()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._close()

    def _close(self) -> None:
        for bar in (self.batches, self.run):
            if bar is not None:
                bar.close()
        self.batches = self.run = None
