"""Training-curve pictures: the file opens, has the fixed size, and shows what the history holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gaitgraph.evaluation.plots import CURVES_DPI, CURVES_INCHES, plot_training_curves

SIZE = (int(CURVES_INCHES[0] * CURVES_DPI), int(CURVES_INCHES[1] * CURVES_DPI))
HISTORY = [
    {
        "epoch": e,
        "train/loss_epoch": 5.0 / e,
        "train/lr": 1e-3 * 0.5**e,
        "train/samples_per_s": 40.0,
        **({"val/rank1": 0.1 * e} if e % 2 == 0 else {}),
    }
    for e in range(1, 9)
]


def _pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == SIZE
        return np.asarray(image.convert("L"))


def _panel_ink(pixels: np.ndarray) -> list[int]:
    """Dark pixels in each third of the picture (one panel each)."""
    width = pixels.shape[1] // 3
    return [int((pixels[:, i * width : (i + 1) * width] < 128).sum()) for i in range(3)]


def test_curves_png_has_the_expected_size_and_three_drawn_panels(tmp_path: Path):
    full = _panel_ink(_pixels(plot_training_curves(HISTORY, tmp_path / "curves.png", title="run x")))
    no_val = [{k: v for k, v in r.items() if k != "val/rank1"} for r in HISTORY]
    partial = _panel_ink(_pixels(plot_training_curves(no_val, tmp_path / "no_val.png")))
    # Same loss and lr panels; the rank-1 panel loses its curve (only a "not logged" note is left).
    assert partial[0] == pytest.approx(full[0], rel=0.1) and partial[1] == pytest.approx(full[1], rel=0.1)
    assert partial[2] < 0.8 * full[2]


@pytest.mark.parametrize("history", [[], [{"epoch": 1}], [{"train/loss": float("nan")}]])
def test_curves_of_an_empty_or_partial_history_still_open(tmp_path: Path, history):
    _pixels(plot_training_curves(history, tmp_path / "curves.png"))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind
