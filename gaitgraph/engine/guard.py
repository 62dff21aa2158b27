"""The Hydra callback of ``gaitgraph.train`` that checks a run and claims its folder before Hydra touches it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gaitgraph.cli import exit_on_error
from gaitgraph.engine import claim
from gaitgraph.engine.checkpoint import check_run_dir
from gaitgraph.engine.preflight import preflight
from gaitgraph.schema import validate, validate_sweep


class TrainGuard(Callback):
    """Hydra callback of ``gaitgraph.train``: validate the config, claim the run folder (one run per folder,
    docs/trust.md#one-run-per-folder) and refuse a used one BEFORE Hydra writes its own files (``.hydra/``, the
    log) into it, so a refused run leaves the folder byte-identical. A sweep claims its sweep folder; each trial
    claims its own in ``train()``. The claim goes when the run ends (or its process exits)."""

    def __init__(self) -> None:
        self.held: list[Path] = []

    @exit_on_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate(config)
        preflight(config)
        run_dir = Path(config.hydra.run.dir)
        if not self._hold(run_dir):  # a torchrun rank other than 0: rank 0 claims and checks for all
            return
        try:
            check_run_dir(run_dir, config.trainer.resume, config.trainer.overwrite)
        except BaseException:
            self._let_go()
            raise

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._let_go()

    @exit_on_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate(config)
        preflight(config)  # a recipe that cannot build fails once here, not once per trial
        if config.get("hparams_search"):
            validate_sweep(config)
        self._hold(Path(config.hydra.sweep.dir))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        self._let_go()

    def _hold(self, folder: Path) -> bool:
        if not claim.acquire(folder):
            return False
        self.held.append(folder)
        return True

    def _let_go(self) -> None:
        while self.held:
            claim.release(self.held.pop())
