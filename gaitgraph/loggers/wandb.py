"""Weights & Biases tracker: offline by default, never fails a run because of logging."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from gaitgraph.loggers.base import RATE_KEY, NullTracker

log = logging.getLogger(__name__)

#: Run summaries (``define_metric``) by key: the best rank-1/mAP and the lowest loss, each beside the last value.
SUMMARIES = (
    (RATE_KEY, "max,last"),
    (re.compile(r"^train/loss"), "min,last"),
)


def _multirun() -> Path | None:
    """The sweep folder when Hydra runs a multirun, else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return Path(HydraConfig.get().sweep.dir)
    return None


def run_group(config: dict[str, Any], name: str) -> str:
    """The W&B group of a run: its Optuna study, else its multirun, else the experiment name.

    Every trial of one study (over many sweeps and machines) lands in one group; a plain ``-m`` grid gets
    ``<name>-<sweep dir name>``; a single run is grouped by ``task_name``.
    """
    study = (config.get("hparams_search") or {}).get("study_name")
    if study:
        return str(study)
    sweep = _multirun()
    return f"{name}-{sweep.name}" if sweep is not None else name


def run_name(config: dict[str, Any], name: str, run_dir: Path) -> str:
    """``<study>-trial<N>`` for an Optuna trial (``hparams_search.trial_number``), else ``<name>-<run dir name>``.

    Hydra numbers the jobs of every sweep from 0 again, so job-based names collide inside a study's group.
    """
    search = config.get("hparams_search") or {}
    if search.get("study_name") and search.get("trial_number") is not None:
        return f"{search['study_name']}-trial{search['trial_number']}"
    return f"{name}-{Path(run_dir).name}"


def job_type_of(config: dict[str, Any], job_type: str) -> str:
    """``sweep`` for a training run that is a trial of an Optuna sweep (a study name, Hydra in multirun mode)."""
    study = (config.get("hparams_search") or {}).get("study_name")
    return "sweep" if job_type == "train" and study and _multirun() is not None else job_type


def summary_of(key: str) -> str | None:
    """The ``define_metric`` summary of a key (see :data:`SUMMARIES`), None for W&B's default (last)."""
    return next((summary for pattern, summary in SUMMARIES if pattern.search(key)), None)


class WandbLogger(NullTracker):
    """Log a run to W&B under ``<run_dir>/wandb``.

    ``mode="offline"`` (default) writes ``wandb/offline-run-*`` for a later ``wandb sync``;
    ``mode="online"`` falls back to offline with a warning when W&B is unreachable or unauthorised,
    after at most ``init_timeout`` seconds.
    """

    def __init__(
        self,
        project: str = "gaitgraph",
        mode: str = "offline",
        entity: str | None = None,
        group: str | None = None,
        tags: list[str] | None = None,
        init_timeout: float = 30.0,
    ) -> None:
        self.project = project
        self.mode = mode
        self.entity = entity
        self.group = group
        self.tags = list(tags or [])
        self.init_timeout = init_timeout
        self.run = None
        self.defined: set[str] = set()

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open the run (online, offline, or offline after a failed online start)."""
        import wandb

        os.environ.setdefault("WANDB_SILENT", "true")
        kwargs = dict(
            project=self.project,
            entity=self.entity,
            group=self.group or run_group(config, name),
            name=run_name(config, name, run_dir),
            job_type=job_type_of(config, job_type),
            tags=sorted(set(self.tags + tags)),
            config=config,
            dir=str(run_dir),
            reinit="finish_previous",
        )
        try:
            self.run = wandb.init(mode=self.mode, settings=wandb.Settings(init_timeout=self.init_timeout), **kwargs)
        except Exception as err:  # noqa: BLE001 - any tracker failure must leave the run going
            if self.mode == "offline":
                log.warning("W&B could not start even offline (%s); continuing without it", err)
                return
            log.warning(
                "W&B online start failed (%s): logging offline to %s/wandb instead; upload later with "
                "`wandb sync %s/wandb/offline-run-*`",
                str(err).splitlines()[0],
                run_dir,
                run_dir,
            )
            try:
                self.run = wandb.init(mode="offline", **kwargs)
            except Exception as err2:  # noqa: BLE001
                log.warning("W&B could not start offline either (%s); continuing without it", err2)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record scalars at a step; a key's summary (best rank-1, lowest loss) is defined when first seen."""
        if self.run is None:
            return
        for key in metrics.keys() - self.defined:
            summary = summary_of(key)
            if summary:
                self.run.define_metric(key, summary=summary)
            self.defined.add(key)
        self.run.log(metrics, step=step)

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """Record a per-view results table as a ``wandb.Table``."""
        if self.run is not None:
            import wandb

            self.run.log({key: wandb.Table(dataframe=table.reset_index())})

    def log_image(self, key: str, path: Path) -> None:
        """Record an image file (the heatmap)."""
        if self.run is not None and Path(path).exists():
            import wandb

            self.run.log({key: wandb.Image(str(path))})

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        """Record a file (the checkpoint) as a versioned artifact."""
        if self.run is not None and Path(path).exists():
            import wandb

            artifact = wandb.Artifact(name=name, type=kind)
            artifact.add_file(str(path))
            self.run.log_artifact(artifact)

    def finish(self, exit_code: int = 0) -> None:
        """Close the run (each sweep trial closes its own); safe to call twice."""
        if self.run is not None:
            self.run.finish(exit_code=exit_code)
            self.run = None
            self.defined = set()
