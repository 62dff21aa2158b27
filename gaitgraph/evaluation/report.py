"""Evaluation reports: the paper-layout table in the terminal, and CSV/JSON/heatmap files on disk."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.image import AxesImage
from matplotlib.path import Path as OutlinePath
from matplotlib.textpath import TextPath, TextToPath
from matplotlib.transforms import Affine2D
from rich.console import Console

from gaitgraph.evaluation.metrics import EvalResult
from gaitgraph.evaluation.plots import write_png
from gaitgraph.evaluation.retrieval import RetrievalResult
from gaitgraph.evaluation.retrieval_report import print_retrieval, retrieval_table, save_retrieval
from gaitgraph.evaluation.tables import latex, markdown, pct, plain_text, rich_table, show
from gaitgraph.utils import atomic_write


def describe(result: EvalResult) -> str:
    """One line naming the protocol and the choices that change its numbers."""
    diag = "identical view excluded" if result.exclude_identical_view else "identical view included"
    return (
        f"protocol {result.protocol}: {diag}, missing gallery -> {result.missing_gallery}, {result.distance} distance"
    )


def result_frame(result: EvalResult, baseline: EvalResult | None = None) -> pd.DataFrame:
    """The rank-1 table (rows = conditions, columns = probe views + mean), with the baseline's per-condition
    mean as a last column when given."""
    frame = result.table[[*result.views, "mean"]].copy()
    frame.columns = [str(c) for c in frame.columns]
    frame.index.name = "rank-1 %"
    if baseline is not None:
        frame["baseline"] = [baseline.table["mean"].get(c, math.nan) for c in frame.index]
    return frame


def summary_line(result: EvalResult, baseline: EvalResult | None = None) -> str:
    """Mean rank-1 and mAP (and the baseline's) in one line."""
    line = f"mean rank-1 {pct(result.mean_rank1)}  mAP {pct(result.mean_map)}"
    if baseline is not None:
        line += f"   (baseline: rank-1 {pct(baseline.mean_rank1)}  mAP {pct(baseline.mean_map)})"
    return line


def print_result(
    result: EvalResult,
    title: str,
    console: Console | None = None,
    baseline: EvalResult | None = None,
) -> None:
    """Rank-1 table as in the papers (x100, one decimal; rows = conditions, columns = probe views + mean).

    With ``baseline``, its per-condition and overall means are shown beside the model's. Never cut: see
    :func:`gaitgraph.evaluation.tables.show`. Retrieval protocols (GREW, Gait3D) print their own one-row table.
    """
    if isinstance(result, RetrievalResult):
        return print_retrieval(result, title, console, baseline)
    console = console or Console()
    show(rich_table(result_frame(result, baseline), title, describe(result), dim=("baseline",)), console)
    console.print(summary_line(result, baseline))


def table_text(result: EvalResult, title: str, baseline: EvalResult | None = None) -> str:
    """What :func:`print_result` prints, as plain text at full width (for train.log)."""
    if isinstance(result, RetrievalResult):
        return plain_text(retrieval_table(result, title, baseline))
    table = rich_table(result_frame(result, baseline), title, describe(result))
    return plain_text(table) + summary_line(result, baseline) + "\n"


def save_result(
    result: EvalResult,
    out_dir: Path,
    prefix: str = "",
    title: str | None = None,
    baseline: EvalResult | None = None,
    tta: bool | None = None,
) -> dict[str, Path]:
    """Write into ``out_dir``: ``{prefix}results.csv`` (the table), ``{prefix}results.json`` (everything),
    ``{prefix}heatmap.png``, ``{prefix}results.md`` (rank-1 and mAP tables in Markdown) and the paper-style
    rank-1 table ``{prefix}paper_table.md`` / ``{prefix}paper_table.tex`` (the caption names the protocol and,
    when ``tta`` is given, whether TTA was on). Each file appears complete or not at all. Retrieval results
    write their own files (:func:`~gaitgraph.evaluation.retrieval_report.save_retrieval`)."""
    if isinstance(result, RetrievalResult):
        return save_retrieval(result, out_dir, prefix)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {
        "csv": "results.csv",
        "json": "results.json",
        "png": "heatmap.png",
        "md": "results.md",
        "paper_md": "paper_table.md",
        "paper_tex": "paper_table.tex",
    }
    paths = {kind: out_dir / f"{prefix}{name}" for kind, name in names.items()}
    atomic_write(paths["csv"], lambda tmp: result.table.to_csv(tmp, index_label="condition", float_format="%.6f"))
    atomic_write(paths["json"], lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=2)))
    atomic_write(paths["png"], lambda tmp: _heatmap(result, tmp, title))
    atomic_write(paths["md"], lambda tmp: tmp.write_text(results_markdown(result, title, baseline)))
    frame, caption = paper_frame(result.table, result.views), paper_caption(result, title, tta)
    atomic_write(paths["paper_md"], lambda tmp: tmp.write_text(markdown(frame, caption=caption)))
    label = "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", result.protocol)
    atomic_write(paths["paper_tex"], lambda tmp: tmp.write_text(latex(frame, caption, label)))
    return paths


def results_markdown(result: EvalResult, title: str | None = None, baseline: EvalResult | None = None) -> str:
    """The rank-1 table (with the baseline column), the summary line and the mAP table, in Markdown."""
    heading = f"{title} [{result.protocol}]" if title else f"rank-1 % [{result.protocol}]"
    map_frame = result.map_table[[*result.views, "mean"]].rename_axis("mAP %")
    return (
        markdown(result_frame(result, baseline), heading, f"{describe(result)}\n\n{summary_line(result, baseline)}")
        + "\n"
        + markdown(map_frame, f"mAP [{result.protocol}]")
    )


def paper_frame(table: pd.DataFrame, views: Sequence[str] | None = None) -> pd.DataFrame:
    """A rank-1 table (fractions; rows = conditions, columns = views + ``mean``) in the papers' layout:
    probe conditions in capitals (NM, BG, CL), columns = probe views + Mean. Takes any such DataFrame."""
    columns = [*(views if views is not None else [c for c in table.columns if c != "mean"]), "mean"]
    frame = table[columns].rename(columns={"mean": "Mean"})
    frame.columns = [str(c) for c in frame.columns]
    frame.index = pd.Index([str(c).upper() for c in frame.index], name="Probe")
    return frame


def paper_caption(result: EvalResult, title: str | None, tta: bool | None) -> str:
    """Rank-1 % per probe view; the protocol's choices; TTA on/off when known."""
    protocol = describe(result)
    parts = [f"Rank-1 accuracy (%) per probe view{f', {title}' if title else ''}", protocol[0].upper() + protocol[1:]]
    if tta is not None:
        parts.append(f"test-time augmentation {'on' if tta else 'off'}")
    return ". ".join(parts) + "."


def save_results(
    results: Sequence[EvalResult],
    out_dir: Path,
    title: str | None = None,
    baselines: dict[str, EvalResult] | None = None,
    tta: bool | None = None,
) -> dict[str, dict[str, Path]]:
    """Save several protocols' results: one writes into ``out_dir``, several into ``out_dir/<protocol>/``.
    ``baselines``: protocol name -> the baseline's result, shown beside the model's in results.md."""
    baselines = baselines or {}

    def folder(r: EvalResult) -> Path:
        return Path(out_dir) if len(results) == 1 else Path(out_dir) / r.protocol

    return {
        r.protocol: save_result(r, folder(r), title=title, baseline=baselines.get(r.protocol), tta=tta) for r in results
    }


#: Heatmap geometry, inches: one probe x gallery cell, the room between panels, the colour bar's strip at the right.
CELL_INCHES, GAP_INCHES, COLORBAR_INCHES = 0.6, 0.3, 1.1
HEATMAP_DPI = 110
_TEXT_PATHS = TextToPath()


def heatmap_figure(result: EvalResult, title: str | None = None) -> Figure:
    """One panel per condition: rank-1 % for every probe view (rows) x gallery view (columns), each cell's number
    readable at 100 % zoom (9 pt up to 11 views, CASIA-B's count). ``title`` (dataset, model) heads the figure.
    Identical-view cells left out of the means are written in parentheses. As in a grid of shared axes, the view
    names are written left of the first column and below the lowest panel of each column.

    The size follows from the table's shape and the measured label widths, and every panel is placed at a fixed
    spot: no layout engine and no tight bounding box, each of which would lay all the text out again.
    """
    views, conditions = list(result.views), list(result.table.index)
    names = [str(v) for v in views]
    cols = min(len(conditions), 4)
    heading = f"{title or 'rank-1 %'}\n{describe(result)}"
    # Inches: the view names, tick marks and axis label left of and below the panels, each panel's title above.
    margin, top, side = _text_inches(names, 8) + 0.45, 0.35, CELL_INCHES * len(views)
    head, row_h = 0.2 + 0.2 * len(heading.splitlines()), top + side + margin
    panels_w = margin + cols * (side + GAP_INCHES)
    width = max(panels_w + COLORBAR_INCHES, _text_inches(heading.splitlines(), 10) + 0.4)
    height = head + math.ceil(len(conditions) / cols) * row_h
    x0 = (width - panels_w - COLORBAR_INCHES) / 2 + margin  # a title wider than the panels: centre them below it
    fig = FigureCanvasAgg(Figure(figsize=(width, height), dpi=HEATMAP_DPI)).figure
    cells = result.cells.set_index(["condition", "probe_view", "gallery_view"])["rank1"]
    for k, condition in enumerate(conditions):
        r, c = divmod(k, cols)
        box = (x0 + c * (side + GAP_INCHES), height - head - r * row_h - top - side)
        ax = fig.add_axes((box[0] / width, box[1] / height, side / width, side / height))
        grid = np.array([[cells[(condition, p, g)] for g in views] for p in views], dtype=float) * 100
        mean = result.table.loc[condition, "mean"] * 100
        image = _heatmap_panel(ax, grid, names, f"{condition}: mean {mean:.1f}", c == 0, k + cols >= len(conditions))
        if len(views) <= 14:
            _cell_numbers(ax, grid, result.exclude_identical_view, 9 if len(views) <= 11 else 7)
    bar_h = 0.8 * (height - head - top - margin)
    bar = (x0 + cols * (side + GAP_INCHES) + 0.1, height - head - top - bar_h / 8 - bar_h)
    cax = fig.add_axes((bar[0] / width, bar[1] / height, 0.2 / width, bar_h / height))
    fig.colorbar(image, cax=cax).set_label("rank-1 %")
    fig.suptitle(heading, fontsize=10, y=1 - 0.1 / height, va="top")
    return fig


def _heatmap(result: EvalResult, path: Path, title: str | None = None) -> None:
    """Draw :func:`heatmap_figure` into ``path`` (PNG; ``title`` in its ``Title`` text chunk)."""
    write_png(heatmap_figure(result, title), path, HEATMAP_DPI, title=title or "rank-1 %")


def _heatmap_panel(ax: Axes, grid: np.ndarray, views: list[str], title: str, left: bool, below: bool) -> AxesImage:
    """The colour cells and the panel's title; the probe views' names when ``left``, the gallery views' when
    ``below``. The other panels have no ticks: their cells line up with the named ones (and each tick costs as
    much to build as a text)."""
    image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", interpolation="nearest")
    ax.set_title(title, fontsize=11, y=1)  # a fixed spot: no search for tick labels above the panel
    ax.set_xticks(range(len(views)) if below else [], views if below else [], rotation=90, fontsize=8)
    ax.set_yticks(range(len(views)) if left else [], views if left else [], fontsize=8)
    if below:
        ax.set_xlabel("gallery view")
    if left:
        ax.set_ylabel("probe view")
    return image


def _cell_numbers(ax: Axes, grid: np.ndarray, parenthesised_diagonal: bool, fontsize: float) -> PathCollection:
    """Every cell's rank-1 % at its centre, as one collection of glyph outlines (``gid`` ``cell numbers``): a few
    hundred text artists would each be laid out on their own when drawn, which took most of the figure's time."""
    labels, centres, colours = [], [], []
    for (i, j), v in np.ndenumerate(grid):
        if not np.isnan(v):
            labels.append(f"({v:.0f})" if i == j and parenthesised_diagonal else f"{v:.0f}")
            centres.append((j, i))
            colours.append("w" if v < 60 else "k")
    paths = [_label_path(label, fontsize) for label in labels]
    points = Affine2D().scale(1 / 72) + ax.figure.dpi_scale_trans  # the outlines are in points
    numbers = PathCollection(
        paths, offsets=centres, offset_transform=ax.transData, transform=points, facecolors=colours, linewidths=0
    )
    numbers.set_gid("cell numbers")
    ax.add_collection(numbers, autolim=False)
    return numbers


@functools.lru_cache(maxsize=512)
def _label_path(label: str, fontsize: float) -> OutlinePath:
    """``label``'s outline at ``fontsize`` points, centred on the origin."""
    path = TextPath((0, 0), label, size=fontsize)
    box = path.get_extents()
    return path.transformed(Affine2D().translate(-(box.x0 + box.x1) / 2, -(box.y0 + box.y1) / 2))


def _text_inches(texts: Sequence[str], fontsize: float) -> float:
    """Width of the widest of ``texts`` at ``fontsize`` points, in inches (matplotlib's default font)."""
    prop = FontProperties(size=fontsize)
    return max((_TEXT_PATHS.get_text_width_height_descent(t, prop, ismath=False)[0] for t in texts), default=0) / 72
