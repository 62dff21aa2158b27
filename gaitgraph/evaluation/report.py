"""Evaluation reports: the paper-layout table in the terminal, and CSV/JSON/heatmap files on disk."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from rich.console import Console  # noqa: E402

from gaitgraph.evaluation.metrics import EvalResult  # noqa: E402
from gaitgraph.evaluation.retrieval import RetrievalResult  # noqa: E402
from gaitgraph.evaluation.retrieval_report import print_retrieval, retrieval_table, save_retrieval  # noqa: E402
from gaitgraph.evaluation.tables import latex, markdown, pct, plain_text, rich_table, show  # noqa: E402
from gaitgraph.utils import atomic_write  # noqa: E402


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


def _heatmap(result: EvalResult, path: Path, title: str | None = None) -> None:
    """One panel per condition: rank-1 % for every probe view (rows) x gallery view (columns), each cell's number
    readable at 100 % zoom (9 pt up to 11 views, CASIA-B's count). ``title`` (dataset, model) heads the figure.

    Identical-view cells left out of the means are written in parentheses.
    """
    views, conditions = list(result.views), list(result.table.index)
    n = len(conditions)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    size = 0.6 * len(views) + 1.5
    fontsize = 9 if len(views) <= 11 else 7
    fig, axes = plt.subplots(
        rows, cols, figsize=(cols * size + 1.5, rows * size + 0.8), squeeze=False, layout="constrained"
    )
    cells = result.cells.set_index(["condition", "probe_view", "gallery_view"])["rank1"]
    image = None
    for ax, condition in zip(axes.flat, conditions):
        grid = np.array([[cells[(condition, p, g)] for g in views] for p in views], dtype=float) * 100
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis")
        ax.set_title(f"{condition}: mean {result.table.loc[condition, 'mean'] * 100:.1f}", fontsize=11)
        ax.set_xticks(range(len(views)), views, rotation=90, fontsize=8)
        ax.set_yticks(range(len(views)), views, fontsize=8)
        ax.set_xlabel("gallery view")
        ax.set_ylabel("probe view")
        if len(views) <= 14:
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    label = f"({v:.0f})" if i == j and result.exclude_identical_view else f"{v:.0f}"
                    ax.text(j, i, label, ha="center", va="center", fontsize=fontsize, color="w" if v < 60 else "k")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    heading = f"{title}\n" if title else "rank-1 %\n"
    fig.suptitle(f"{heading}{describe(result)}", fontsize=10)
    fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8, label="rank-1 %")
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight", metadata={"Title": f"{title or 'rank-1 %'}"})
    plt.close(fig)
