"""Training-curve pictures: the file opens, has the fixed size, and shows what the history holds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
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
    partial = _panel_ink(_pixels(plot_training_curves(no_val, tmp_path / "no_val.png", title="run x")))
    # Same loss and lr panels; the rank-1 panel loses its curve (only a "not logged" note is left).
    assert partial[0] == pytest.approx(full[0], rel=0.1) and partial[1] == pytest.approx(full[1], rel=0.1)
    assert _curve_pixels(tmp_path / "curves.png") > 200 and _curve_pixels(tmp_path / "no_val.png") == 0


def _curve_pixels(path: Path) -> int:
    """Pixels of the rank-1 panel (the right third) in the curves' colour (matplotlib's first, tab:blue)."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB")).astype(int)
    third = rgb[:, 2 * rgb.shape[1] // 3 :]
    return int((np.abs(third - np.array([31, 119, 180])).sum(axis=2) < 40).sum())


@pytest.mark.parametrize("history", [[], [{"epoch": 1}], [{"train/loss": float("nan")}]])
def test_curves_of_an_empty_or_partial_history_still_open(tmp_path: Path, history):
    _pixels(plot_training_curves(history, tmp_path / "curves.png"))
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left nothing behind


def _title(path: Path) -> str:
    with Image.open(path) as image:
        return image.info.get("Title", "")


def _shown_ticks(ax) -> list[str]:
    """The x tick labels inside the axis' range (matplotlib also keeps some just outside)."""
    low, high = ax.get_xlim()
    return [t.get_text() for t, x in zip(ax.get_xticklabels(), ax.get_xticks()) if low <= x <= high]


def test_curves_are_titled_with_what_ran_and_read_against_chance_and_baseline(tmp_path: Path, monkeypatch):
    import matplotlib.pyplot as plt

    from gaitgraph.evaluation import plots

    seen = {}
    real = plots.save_figure

    def record(fig, path, *args, **kwargs):
        fig.canvas.draw()
        seen["ticks"] = [_shown_ticks(ax) for ax in fig.axes]
        seen["lines"] = fig.axes[2].get_legend_handles_labels()[1]
        seen["cut"] = _inside(fig)
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(plots, "save_figure", record)
    one_epoch = [{"epoch": 1, "train/loss_epoch": 9.0, "train/lr": 1e-3, "val/rank1": 0.7}]
    path = plot_training_curves(
        one_epoch,
        tmp_path / "curves.png",
        title="resgcn_n21_r8 on psymo10: training curves (debug)",
        references={"chance": 0.5, "pose baseline": 0.625},
    )
    assert _title(path) == "resgcn_n21_r8 on psymo10: training curves (debug)"
    assert seen["ticks"] == [["1"]] * 3, "whole epochs only, even for a single one"
    assert seen["lines"] == ["chance 50.0", "pose baseline 62.5", "val/rank1"]
    assert seen["cut"] == [], "the fixed margins cut no label"
    plot_training_curves(HISTORY, tmp_path / "eight.png")
    assert all(label.isdigit() for label in seen["ticks"][2] if label), seen["ticks"][2]
    assert seen["cut"] == []
    plt.close("all")


def test_heatmap_is_titled_and_its_numbers_are_readable(tmp_path: Path):
    from gaitgraph.evaluation import report

    from .test_eval_report import result_for

    title = "casia_b test, rank-1 % (ResGCN)"
    paths = report.save_result(result_for(True), tmp_path, title=title)
    assert _title(paths["png"]) == title
    fig = report.heatmap_figure(result_for(True), title)
    numbers = [c for ax in fig.axes for c in ax.collections if c.get_gid() == "cell numbers"]
    assert sum(len(c.get_offsets()) for c in numbers) == 2 * 9, "one number per probe x gallery view cell"
    # The outlines are in points: a digit is about 0.7 of the font size tall.
    assert min(p.get_extents().height for c in numbers for p in c.get_paths()) >= 0.7 * 8, "readable at 100 % zoom"
    assert fig.get_suptitle().startswith(f"{title}\n")
    assert _inside(fig) == [], "the fixed layout cuts no label"
    with Image.open(paths["png"]) as image:
        assert image.size == tuple(int(x * report.HEATMAP_DPI) for x in fig.get_size_inches())


def test_heatmap_names_the_views_left_of_and_below_the_panels(tmp_path: Path):
    from gaitgraph.evaluation import report
    from gaitgraph.evaluation.metrics import evaluate
    from gaitgraph.evaluation.protocols import Protocol

    views = [f"{i * 18:03d}" for i in range(11)]
    conditions = ["nm", "bg", "cl", "ph", "txt"]  # two rows: the last column's panel is the lowest in its column
    rows = [(s, c, 1, v) for s in range(3) for c in ["gallery", *conditions] for v in views]
    meta = pd.DataFrame(rows, columns=["subject", "condition", "seq", "view"])
    spec = {"gallery": {"condition": ["gallery"]}, "probes": {c: {"condition": [c]} for c in conditions}}
    spec["exclude_identical_view"] = False
    fig = report.heatmap_figure(
        evaluate(np.eye(3, dtype=np.float32)[meta.subject], meta, Protocol.from_config("x", spec))
    )
    panels = [ax for ax in fig.axes if ax.get_title()]
    named_x = [ax.get_title().split(":")[0] for ax in panels if [t.get_text() for t in ax.get_xticklabels()] == views]
    named_y = [ax.get_title().split(":")[0] for ax in panels if [t.get_text() for t in ax.get_yticklabels()] == views]
    assert named_x == ["bg", "cl", "ph", "txt"] and named_y == ["nm", "txt"]
    assert _inside(fig) == []
    renderer = fig.canvas.get_renderer()
    for ax in panels:
        boxes = _tick_boxes(ax, renderer)
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), "view names run into each other"
        if ax.get_xlabel():  # the names below a panel stay clear of the panel under it
            lowest = min(b.y0 for b in [ax.xaxis.label.get_window_extent(renderer), *boxes])
            assert all(lowest > other.get_window_extent(renderer).y1 for other in panels if other.bbox.y1 < ax.bbox.y0)


def _drawn_texts(fig) -> list:
    """The texts a saved figure shows: its titles, and each panel's title, axis labels, notes and the tick labels
    inside the axis range (matplotlib keeps a few more ticks just outside, never drawn)."""
    texts = list(fig.texts)
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label, *ax.texts]
        for axis, (low, high) in ((ax.xaxis, ax.get_xlim()), (ax.yaxis, ax.get_ylim())):
            low, high = min(low, high), max(low, high)
            texts += [t.label1 for t in axis.get_major_ticks() if low <= t.get_loc() <= high and t.label1.get_visible()]
    return [t for t in texts if t.get_text() and t.get_visible()]


def _tick_boxes(ax, renderer) -> list:
    """Window extents of the x tick labels a panel shows (major and minor), left to right."""
    low, high = sorted(ax.get_xlim())
    ticks = [*ax.xaxis.get_major_ticks(), *ax.xaxis.get_minor_ticks()]
    shown = [t.label1 for t in ticks if low <= t.get_loc() <= high and t.label1.get_visible() and t.label1.get_text()]
    return sorted((t.get_window_extent(renderer) for t in shown), key=lambda box: box.x0)


def _inside(fig) -> list[str]:
    """Texts of ``fig`` that reach outside the figure (cut off when saved at its fixed size)."""
    fig.canvas.draw()
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    out = []
    for text in _drawn_texts(fig):
        ext = text.get_window_extent(renderer)
        if ext.x0 < box.x0 - 1 or ext.x1 > box.x1 + 1 or ext.y0 < box.y0 - 1 or ext.y1 > box.y1 + 1:
            out.append(text.get_text())
    return out


def test_comparison_plots_keep_long_names_inside_and_apart(tmp_path: Path, monkeypatch):
    optuna = pytest.importorskip("optuna")
    from gaitgraph.sweep import plots as sweep_plots

    figures = {}
    real = sweep_plots.save_figure

    def record(fig, path, *args, **kwargs):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        figures[Path(path).name] = {
            "cut": _inside(fig),
            "xlabels": [ax.xaxis.label.get_window_extent(renderer) for ax in fig.axes if ax.get_xlabel()],
            "ticks": [_tick_boxes(ax, renderer) for ax in fig.axes],
        }
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(sweep_plots, "save_figure", record)
    params = ["optimizer.optimizer.lr", "optimizer.optimizer.weight_decay", "augmentation.transforms.flip.p"]
    importances = dict(zip(params, (0.6, 0.3, 0.1)))
    title = "study gaitgraph-psymo10-optuna_small-" + "9f3c1e2a" * 6
    sweep_plots.plot_importances(importances, "Optuna fANOVA", 12, title, tmp_path / "param_importances.png")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    for i in range(8):  # a learning rate over about one decade: matplotlib labels the 2x, 3x, ... ticks too
        trial = study.ask()
        values = [trial.suggest_float(params[0], 1e-3, 2e-2, log=True), trial.suggest_float(params[1], 1e-6, 1e-2)]
        study.tell(trial, 60.0 + i + values[0] + trial.suggest_float(params[2], 0.0, 1.0))
    sweep_plots.plot_optuna(study, tmp_path, params)
    assert figures["param_importances.png"]["cut"] == []
    assert _title(tmp_path / "param_importances.png").startswith("study gaitgraph-psymo10")
    assert figures["optuna_slice.png"]["cut"] == []
    labels = figures["optuna_slice.png"]["xlabels"]
    assert len(labels) == 3 and all(a.x1 < b.x0 for a, b in zip(labels, labels[1:])), "parameter names overlap"
    for boxes in figures["optuna_slice.png"]["ticks"]:
        assert all(a.x1 < b.x0 for a, b in zip(boxes, boxes[1:])), "tick labels of a panel run into each other"
    with Image.open(tmp_path / "optuna_slice.png") as image:
        assert image.size == sweep_plots.expected_size("optuna_slice", 3)
