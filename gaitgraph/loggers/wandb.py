"""Weights & Biases tracker: offline by default, never fails a run because of logging."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pandas as pd

from gaitgraph.loggers.base import NullLogger

log = logging.getLogger(__name__)


class WandbLogger(NullLogger):
    """Log a run to W&B under ``<run_dir>/wandb``.

    ``mode="offline"`` (default) writes ``wandb/offline-run-*`` for a later ``wandb sync``;
    ``mode="online"`` falls back to offline with a warning when W&B is unreachable or unauthorised.
    """

    def __init__(
        self,
        project: str = "gaitgraph",
        mode: str = "offline",
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
    ) -> None:
        self.project = project
        self.mode = mode
        self.entity = entity
        self.group = group
        self.tags = list(tags or [])
        self.run = None

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str]) -> None:
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        kwargs = dict(
            project=self.project,
            entity=self.entity,
            group=self.group or name,
            name=f"{name}-{Path(run_dir).name}",
            tags=sorted(set(self.tags + tags)),
            config=config,
            dir=str(run_dir),
            reinit="finish_previous",
        )
        try:
            self.run = wandb.init(mode=self.mode, **kwargs)
        except Exception as err:  # noqa: BLE001 - any tracker failure must leave the run going
            if self.mode == "offline":
                log.warning("W&B could not start even offline (%s); continuing without it", err)
                return
            log.warning("W&B online failed (%s); logging offline instead, upload later with `wandb sync`", err)
            self.run = wandb.init(mode="offline", **kwargs)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        if self.run is not None:
            self.run.log(metrics, step=step)

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(dataframe=table.reset_index())})

    def log_image(self, key: str, path: Path) -> None:
        if self.run is not None and Path(path).exists():
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        if self.run is not None and Path(path).exists():
            import wandb

            artifact = wandb.Artifact(name=name, type=kind)
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
