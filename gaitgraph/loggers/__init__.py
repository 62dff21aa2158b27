"""Experiment trackers (``logger`` config group): W&B, TensorBoard, CSV, any of them at once, or none.

The ``logger`` config node maps a tracker's name to its config (``logger=[csv,tensorboard]`` chooses two);
:func:`build_logger` turns it into one :class:`LoggerGroup` that the engine talks to.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gaitgraph.errors import ConfigError
from gaitgraph.loggers.base import Tracker, in_percent

log = logging.getLogger(__name__)


class LoggerGroup:
    """Every chosen tracker behind the one :class:`~gaitgraph.loggers.base.Tracker` interface, each call sent to all.

    Rank-1, mAP and mINP reach every tracker in percent, as tables and papers print them (the platform computes
    fractions). A tracker that raises is reported once per method as a warning and the others carry on: tracking never
    stops a run. One whose ``start`` failed gets no further calls.
    """

    def __init__(self, loggers: Mapping[str, Tracker] | None = None) -> None:
        self.loggers = dict(loggers or {})
        self._warned: set[tuple[str, str]] = set()

    def _each(self, method: str, *args: Any, **kwargs: Any) -> None:
        for name, tracker in list(self.loggers.items()):
            try:
                getattr(tracker, method)(*args, **kwargs)
            except Exception as err:  # noqa: BLE001 - a tracker failure must leave the run going
                if (name, method) not in self._warned:
                    self._warned.add((name, method))
                    log.warning(
                        "logger '%s' failed in %s (%s: %s); the run goes on",
                        name,
                        method,
                        type(err).__name__,
                        str(err).splitlines()[0] if str(err) else "",
                    )
                if method == "start":
                    del self.loggers[name]

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open the run in every tracker."""
        self._each("start", run_dir, config, name=name, tags=tags, job_type=job_type)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record the same scalars in every tracker, rank-1/mAP in percent (:func:`in_percent`)."""
        self._each("log_metrics", in_percent(metrics), step=step)

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """Record a results table in every tracker."""
        self._each("log_table", key, table)

    def log_image(self, key: str, path: Path) -> None:
        """Record an image file in every tracker."""
        self._each("log_image", key, path)

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        """Record a file as an artifact in every tracker."""
        self._each("log_artifact", path, name, kind)

    def finish(self, exit_code: int = 0) -> None:
        """Close every tracker (safe twice)."""
        self._each("finish", exit_code)


def build_logger(logger_cfg: Mapping[str, Any] | None) -> LoggerGroup:
    """The trackers of a ``logger`` config node (name -> config with ``_target_``), as one :class:`LoggerGroup`.

    ``None`` or an empty node (``logger=none``) gives a group that tracks nothing. A tracker that cannot be
    built is left out with a warning, like one that fails later.
    """
    loggers = {}
    for name, node in (logger_cfg or {}).items():
        if node is None:  # `logger.csv=null` on the command line drops one of several
            continue
        if not isinstance(node, Mapping) or "_target_" not in node:
            raise ConfigError(
                f"logger.{name}",
                node,
                "a tracker config with _target_",
                hint="the logger node maps names to trackers, e.g. logger.wandb.mode=online (not logger.mode)",
            )
        try:
            loggers[str(name)] = instantiate(node)
        except Exception as err:  # noqa: BLE001 - a tracker that cannot be built must not stop the run
            log.warning("logger '%s' could not be built (%s); the run goes on without it", name, err)
    return LoggerGroup(loggers)


@contextlib.contextmanager
def tracker_session(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], job_type: str, enabled: bool = True
) -> Iterator[Tracker]:
    """The run's trackers (the ``logger`` node; none when ``enabled`` is False, e.g. on DDP ranks > 0), started
    with the resolved config and one tag per chosen config option, finished with exit code 0 or 1."""
    logger = build_logger(cfg.get("logger") if enabled else None)
    logger.start(
        run_dir,
        OmegaConf.to_container(cfg, resolve=True),
        name=cfg.task_name,
        tags=[f"{k}:{v}" for k, v in choices.items()],
        job_type=job_type,
    )
    exit_code = 1
    try:
        yield logger
        exit_code = 0
    finally:
        logger.finish(exit_code)
