"""Stop a sweep trial whose validation curve is hopeless: the job reports to its own Optuna trial, the pruner judges.

``hparams_search.pruner`` (an Optuna pruner, e.g. ``MedianPruner``; ``hparams_search=optuna_pruned``) turns it on.
Every sweep job is told its study and trial number (``hparams_search.study_name`` / ``trial_number``, set by
:class:`gaitgraph.sweep.sweeper.OptunaSweeper`), so this callback opens that trial in the study's storage, reports
``val/rank1`` at every validation (``trainer.val_every``; the step is the epoch; in percent, the unit of the
objective ``train()`` returns, so a trial's curve and its value share one axis) and raises :class:`TrialPruned`
when the pruner says the curve is below its peers'. The sweeper records the trial as PRUNED and goes on. Only
validation keys are accepted: the test split never decides anything.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import optuna

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.errors import ConfigError, GaitGraphError
from gaitgraph.loggers.base import in_percent

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer

log = logging.getLogger(__name__)


class TrialPruned(GaitGraphError, optuna.TrialPruned):
    """The pruner stopped this sweep trial. A platform error, so the entry point reports it in one line and a DDP
    rank hands it to the parent process; an :class:`optuna.TrialPruned`, so the sweeper records PRUNED."""

    kind = "trial pruned"


class Pruning(Callback):
    """Report ``monitor`` of every validated epoch to the sweep trial and stop the run when it is pruned.

    Does nothing without a pruner or outside a sweep (no trial number). Under DDP rank 0 reports and decides and
    every rank stops together.
    """

    def __init__(
        self,
        pruner: Any,
        study_name: str | None,
        trial_number: int | None,
        storage: str | None,
        sqlite_path: str | None,
        monitor: str = "val/rank1",
    ) -> None:
        if not str(monitor).startswith("val/"):
            raise ConfigError(
                "callbacks.pruning.monitor", monitor, "a validation key (val/...): the test split never prunes"
            )
        self.monitor = monitor
        self.active = pruner is not None and study_name is not None and trial_number is not None
        self.pruner, self.study_name, self.trial_number = pruner, study_name, trial_number
        self.storage, self.sqlite_path = storage, sqlite_path
        self.trial: Any = None
        self.reported = 0

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.active and trainer.ctx.is_main:
            self.trial = open_trial(self.pruner, str(self.study_name), int(self.trial_number), self._url())
            pruner = type(self.pruner).__name__
            log.info(
                "pruning: trial %d of study %s reports %s to %s",
                self.trial_number,
                self.study_name,
                self.monitor,
                pruner,
            )

    def on_train_epoch_end(self, trainer: Trainer, record: dict[str, Any]) -> None:
        if not self.active:
            return
        verdict = None
        if trainer.ctx.is_main and self.monitor in record:
            verdict = self._judge(
                record["epoch"], float(in_percent({self.monitor: record[self.monitor]})[self.monitor])
            )
        verdict = trainer.ctx.broadcast(verdict)
        if verdict is not None:
            raise TrialPruned(verdict)

    def on_fit_end(self, trainer: Trainer) -> None:
        if self.active and trainer.ctx.is_main and not self.reported:
            log.warning("pruning: no %s was recorded (no validation split?): nothing was reported", self.monitor)

    def _judge(self, epoch: int, value: float) -> str | None:
        """Report ``value`` at ``epoch``; the reason to stop, or None to go on."""
        self.trial.report(value, epoch)
        self.reported += 1
        if not self.trial.should_prune():
            return None
        return (
            f"trial {self.trial_number} of study {self.study_name} stopped after epoch {epoch}: {self.monitor} "
            f"{value:.1f} % is below what {type(self.pruner).__name__} keeps; the sweep goes on"
        )

    def _url(self) -> str:
        from gaitgraph.sweep.study import storage_url

        return storage_url(self.storage, str(self.sqlite_path))


def open_trial(pruner: Any, study_name: str, number: int, url: str) -> Any:
    """Trial ``number`` of ``study_name`` at ``url``, judged by ``pruner`` (Optuna keeps no pruner in the study: the
    job brings its own)."""
    study = optuna.load_study(study_name=study_name, storage=url, pruner=pruner)
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    return optuna.trial.Trial(study, trial_id)
