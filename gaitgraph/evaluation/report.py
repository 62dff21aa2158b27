"""Evaluation reports: the paper-layout table in the terminal, and CSV/JSON/heatmap files on disk."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gaitgraph.evaluation.metrics import EvalResult  # noqa: E402
from gaitgraph.evaluation.retrieval import RetrievalResult  # noqa: E402
from gaitgraph.evaluation.retrieval_report import print_retrieval, save_retrieval  # noqa: E402
from gaitgraph.utils import atomic_write  # noqa: E402


def describe(result: EvalResult) -> str:
    """One line naming the protocol and the choices that change its numbers."""
    diag = "identical view excluded" if result.exclude_identical_view else "identical view included"
    return f"protocol {result.protocol}: {diag}, missing gallery -> {result.missing_gallery}, {result.distance} distance"


def print_result(
    result: EvalResult,
    title: str,
    console: Console | None = None,
    baseline: EvalResult | None = None,
) -> None:
    """Rank-1 table as in the papers (x100, one decimal; rows = conditions, columns = probe views + mean).

    With ``baseline``, its per-condition and overall means are shown beside the model's. Retrieval
    protocols (GREW, Gait3D) print their own one-row table.
    """
    if isinstance(result, RetrievalResult):
        return print_retrieval(result, title, console, baseline)
    console = console or Console()
    table = Table(title=title, caption=describe(result))
    table.add_column("rank-1 %", style="bold")
    for view in result.views:
        table.add_column(str(view), justify="right")
    table.add_column("mean", justify="right", style="bold")
    if baseline is not None:
        table.add_column("baseline", justify="right", style="dim")
    for condition, row in result.table.iterrows():
        cells = [_pct(row[v]) for v in result.views] + [_pct(row["mean"])]
        if baseline is not None:
            cells.append(_pct(baseline.table["mean"].get(condition, math.nan)))
        table.add_row(str(condition), *cells)
    console.print(table)
    line = f"mean rank-1 {_pct(result.mean_rank1)}  mAP {_pct(result.mean_map)}"
    if baseline is not None:
        line += f"   (baseline: rank-1 {_pct(baseline.mean_rank1)}  mAP {_pct(baseline.mean_map)})"
    console.print(line)


def save_result(result: EvalResult, out_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Write ``{prefix}results.csv`` (the table), ``{prefix}results.json`` (everything) and
    ``{prefix}heatmap.png`` into ``out_dir``; each file appears complete or not at all. Retrieval results
    write their own files (:func:`~gaitgraph.evaluation.retrieval_report.save_retrieval`)."""
    if isinstance(result, RetrievalResult):
        return save_retrieval(result, out_dir, prefix)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {kind: out_dir / f"{prefix}{name}" for kind, name in (("csv", "results.csv"), ("json", "results.json"), ("png", "heatmap.png"))}
    atomic_write(paths["csv"], lambda tmp: result.table.to_csv(tmp, index_label="condition", float_format="%.6f"))
    atomic_write(paths["json"], lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=2)))
    atomic_write(paths["png"], lambda tmp: _heatmap(result, tmp))
    return paths


def save_results(results: Sequence[EvalResult], out_dir: Path) -> dict[str, dict[str, Path]]:
    """Save several protocols' results: one writes into ``out_dir``, several into ``out_dir/<protocol>/``."""
    if len(results) == 1:
        return {results[0].protocol: save_result(results[0], out_dir)}
    return {r.protocol: save_result(r, Path(out_dir) / r.protocol) for r in results}


def _heatmap(result: EvalResult, path: Path) -> None:
    """One panel per condition: rank-1 % for every probe view (rows) x gallery view (columns).

    Identical-view cells left out of the means are written in parentheses.
    """
    views, conditions = list(result.views), list(result.table.index)
    n = len(conditions)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    size = 0.45 * len(views) + 1.5
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * size + 1.5, rows * size + 0.6), squeeze=False, layout="constrained"
    )
    cells = result.cells.set_index(["condition", "probe_view", "gallery_view"])["rank1"]
    image = None
    for ax, condition in zip(axes.flat, conditions):
        grid = np.array([[cells[(condition, p, g)] for g in views] for p in views], dtype=float) * 100
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(f"{condition}: {result.table.loc[condition, 'mean'] * 100:.1f}")
        ax.set_xticks(range(len(views)), views, rotation=90, fontsize=7)
        ax.set_yticks(range(len(views)), views, fontsize=7)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        if len(views) <= 14:
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    label = f"({v:.0f})" if i == j and result.exclude_identical_view else f"{v:.0f}"
                    ax.text(j, i, label, ha="center", va="center", fontsize=6, color="w" if v < 60 else "k")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"rank-1 % | {describe(result)}", fontsize=9)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.1f}"
