"""The Hydra callback of ``gaitgraph.train`` that checks a run before Hydra touches its directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gaitgraph.cli import exit_on_error
from gaitgraph.engine.checkpoint import check_run_dir
from gaitgraph.schema import validate, validate_sweep


class TrainGuard(Callback):
    """Hydra callback of ``gaitgraph.train``: validate the config and refuse a used run directory BEFORE Hydra
    writes its own files (``.hydra/``, the log) into it, so a refused run leaves the directory byte-identical."""

    @exit_on_error
    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate(config)
        run_dir = Path(config.hydra.run.dir)
        check_run_dir(run_dir, config.trainer.resume, config.trainer.overwrite)

    @exit_on_error
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        validate(config)
        if config.get("hparams_search"):
            validate_sweep(config)
