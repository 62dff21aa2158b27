"""One tracker session per run: build the chosen logger, open it, and close it with the run's outcome."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from gaitgraph.loggers.base import NullLogger
from gaitgraph.utils import build


@contextlib.contextmanager
def tracker_session(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], job_type: str, enabled: bool = True
) -> Iterator[Any]:
    """The run's tracker (``logger`` config; a no-op one when ``enabled`` is False, e.g. on DDP ranks > 0),
    started with the resolved config and one tag per chosen config option, finished with exit code 0 or 1."""
    logger = build(cfg.logger) if enabled and cfg.get("logger") else NullLogger()
    logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), name=cfg.task_name,
                 tags=[f"{k}:{v}" for k, v in choices.items()])
    exit_code = 1
    try:
        yield logger
        exit_code = 0
    finally:
        logger.finish(exit_code)
