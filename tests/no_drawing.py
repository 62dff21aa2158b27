"""Runs that build their figures but do not draw them, for tests that never look at a run's pictures."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure
from PIL import Image

from gaitgraph.evaluation import plots, report


def skip_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures are built but written as 1-pixel PNG files (still pictures: W&B opens the heatmap file to log it): a
    run's heatmap and training curves (drawing and encoding them is about a third of a tiny run's CPU time;
    tests/evaluation/test_eval_plots.py checks them) and scripts/compare_runs.py's plots (tests/test_compare_runs.py
    opens some)."""

    def one_pixel(figure: Figure, path: str | Path, *args, **kwargs) -> None:
        Image.new("RGB", (1, 1)).save(path, format="png")

    monkeypatch.setattr(plots, "write_png", one_pixel)
    monkeypatch.setattr(report, "write_png", one_pixel)  # report imported the name
