"""Pictures of a run: training curves (loss, learning rate, validation rank-1) as one PNG. Headless (Agg)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402
from PIL.PngImagePlugin import PngInfo  # noqa: E402

from gaitgraph.utils import atomic_write  # noqa: E402

#: Pixel size of the curves figure: fixed (no tight bounding box), so every run's picture has the same size.
CURVES_INCHES, CURVES_DPI = (13.5, 3.6), 100
#: Where the curves' panels sit, as fractions of the figure: fixed margins (inches / figure inches) with room for
#: five-character tick labels and the axis label left of each panel, and the title above. A layout engine would
#: lay every text out twice more before drawing, which took more time than the drawing itself.
CURVES_LAYOUT = {
    "left": 0.85 / CURVES_INCHES[0],
    "right": 1 - 0.15 / CURVES_INCHES[0],
    "bottom": 0.55 / CURVES_INCHES[1],
    "top": 1 - 0.35 / CURVES_INCHES[1],
    "wspace": 0.27,
}
#: Per-epoch keys each panel draws, first found wins (older runs logged the epoch-mean loss as ``train/loss``).
LOSS_KEYS = ("train/loss_epoch", "train/loss")
LR_KEYS = ("train/lr",)
RANK1_KEYS = ("val/rank1", "test_selection/rank1")


def figure_title(fig: Figure) -> str:
    """The figure's title (``suptitle``), else the first panel's, else empty."""
    return fig.get_suptitle() or next((ax.get_title() for ax in fig.axes if ax.get_title()), "")


def save_figure(fig: Figure, path: str | Path, dpi: int = CURVES_DPI) -> Path:
    """Write ``fig`` as PNG atomically (:func:`write_png`) and close it."""
    atomic_write(path, lambda tmp: write_png(fig, tmp, dpi))
    plt.close(fig)
    return Path(path)


def write_png(fig: Figure, path: str | Path, dpi: float, title: str | None = None) -> None:
    """Draw ``fig`` at ``dpi`` and write it to ``path`` as an opaque RGB PNG, ``title`` (default: the figure's,
    :func:`figure_title`) in the PNG's ``Title`` text chunk, so a script can tell the pictures apart.

    The figures are opaque, so the alpha channel (a quarter of the bytes to compress) is dropped; zlib's fastest
    level compresses these flat colours about as well as matplotlib's RGBA file at the default level, in half the
    time."""
    fig.set_dpi(dpi)
    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    info = PngInfo()
    info.add_text("Title", (figure_title(fig) if title is None else title).replace("\n", " "))
    pixels = np.asarray(canvas.buffer_rgba())[..., :3]
    Image.fromarray(pixels).save(path, format="png", pnginfo=info, dpi=(dpi, dpi), compress_level=1)


def _series(history: Sequence[dict[str, Any]], keys: Sequence[str]) -> tuple[str | None, list[float], list[float]]:
    """(key used, x = epochs, y) of the first key present in some record; finite values only."""
    for key in keys:
        points = [
            (float(r.get("epoch", i + 1)), float(r[key]))
            for i, r in enumerate(history)
            if isinstance(r.get(key), (int, float)) and math.isfinite(r[key])
        ]
        if points:
            return key, [p[0] for p in points], [p[1] for p in points]
    return None, [], []


def _panel(
    ax: Any,
    history: Sequence[dict[str, Any]],
    keys: Sequence[str],
    ylabel: str,
    scale: float = 1.0,
    log: bool = False,
    best: str | None = None,
    lines: dict[str, float] | None = None,
) -> None:
    """One metric over epochs (whole-epoch ticks); an empty panel says which keys it looked for. ``best``: mark
    the max or min. ``lines``: label -> level (same unit as the values, times ``scale``) drawn across."""
    key, x, y = _series(history, keys)
    ax.set_xlabel("epoch")
    epochs = [float(r.get("epoch", i + 1)) for i, r in enumerate(history)]
    if epochs:  # every panel spans all epochs, and at least one, so the ticks are whole epochs
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    for (label, level), style in zip((lines or {}).items(), (":", "--", "-.")):
        ax.axhline(level * scale, color="grey", linestyle=style, linewidth=1, label=f"{label} {level * scale:.1f}")
    if key is None:
        ax.text(
            0.5,
            0.5,
            f"not logged\n({', '.join(keys)})",
            ha="center",
            va="center",
            transform=ax.transAxes,
            fontsize=8,
            color="grey",
        )
        return
    y = [v * scale for v in y]
    ax.plot(x, y, "o-" if len(x) < 30 else "-", markersize=3, label=key)
    ax.margins(y=0.15)  # room for the best-value note
    if log and all(v > 0 for v in y):
        ax.set_yscale("log")
    if best is not None:
        i = max(range(len(y)), key=y.__getitem__) if best == "max" else min(range(len(y)), key=y.__getitem__)
        # At the first or last of several epochs the note runs inwards, not past the panel's edge.
        ha = "center" if len(x) == 1 else "right" if x[i] == max(x) else "left" if x[i] == min(x) else "center"
        ax.annotate(
            f"{best} {y[i]:.3g} (epoch {x[i]:g})",
            (x[i], y[i]),
            textcoords="offset points",
            xytext=(0, 6),
            ha=ha,
            fontsize=7,
        )
    ax.legend(fontsize=7, loc="best")


def plot_training_curves(
    history: Sequence[dict[str, Any]],
    path: str | Path,
    title: str | None = None,
    references: dict[str, float] | None = None,
) -> Path:
    """One PNG of per-epoch records (``epoch``, ``train/loss_epoch``, ``train/lr``, ``val/rank1``, ...; any may be
    missing): loss, learning rate (log axis) and validation rank-1 (%) side by side. ``references``: levels of
    the selection split's rank-1 to read it against, as fractions (``{"chance": 0.5, "pose baseline": 0.4}``).
    Written atomically."""
    fig = FigureCanvasAgg(Figure(figsize=CURVES_INCHES)).figure
    axes = fig.subplots(1, 3, gridspec_kw=CURVES_LAYOUT)
    _panel(axes[0], history, LOSS_KEYS, "training loss (epoch mean)", best="min")
    _panel(axes[1], history, LR_KEYS, "learning rate", log=True)
    rank1 = "rank-1 % (selection split)"
    _panel(axes[2], history, RANK1_KEYS, rank1, scale=100.0, best="max", lines=references)
    if title:
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / CURVES_INCHES[1], va="top")
    return save_figure(fig, path)
