"""The tracker interface every ``logger=`` option implements (:class:`Tracker`), and the no-op one."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd

#: Keys of rank-k, mAP and mINP values: the measure is a whole part of the key (``val/rank1``,
#: ``val/rank1_best``, ``test/mean_rank1``, ``test/mean_mAP``), so ``test/x/heatmap`` is not taken for one.
RATE_KEY = re.compile(r"(^|[/_])(rank\d+|rank-\d+|mAP|map|mINP|inp)([/_]|$)")


def in_percent(metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with every rank-k/mAP/mINP value (a fraction inside the platform) in percent, the unit
    papers print and every tracker, table and plot shows; other values unchanged."""
    return {k: v * 100 if RATE_KEY.search(k) and isinstance(v, (int, float)) else v for k, v in metrics.items()}


@runtime_checkable
class Tracker(Protocol):
    """What every tracker (a ``logger=`` option) answers; the engine and ``gaitgraph.evaluate`` talk to one.

    Every tracker receives the same calls with the same keys (``train/loss``, ``val/rank1``, ...); rank-k, mAP and
    mINP arrive in percent (:func:`in_percent`).
    """

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open the run. ``job_type``: ``train``, ``eval`` (gaitgraph.evaluate) or ``sweep``."""
        ...

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Record scalars at a step (``None``: the tracker's current step)."""
        ...

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """Record a results table."""
        ...

    def log_image(self, key: str, path: Path) -> None:
        """Record an image file (e.g. the heatmap)."""
        ...

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        """Record a file as a versioned artifact (e.g. the checkpoint)."""
        ...

    def finish(self, exit_code: int = 0) -> None:
        """Close the run; must be safe to call twice."""
        ...


class NullTracker:
    """A :class:`Tracker` that records nothing (``logger=none``: the run directory still holds metrics.json and
    eval/). Trackers derive from it, so a call one of them has no use for (CSV has no images) does nothing."""

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Nothing to open."""

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Drop the scalars."""

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """Drop the table."""

    def log_image(self, key: str, path: Path) -> None:
        """Drop the image."""

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        """Drop the artifact."""

    def finish(self, exit_code: int = 0) -> None:
        """Nothing to close."""
