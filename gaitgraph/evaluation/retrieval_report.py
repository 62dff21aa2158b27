"""Reports of retrieval protocols (GREW, Gait3D): a one-row terminal table, CSV/JSON/plot files and
GREW's submission CSV. :mod:`gaitgraph.evaluation.report` hands retrieval results to these functions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from gaitgraph.evaluation.retrieval import RetrievalResult  # noqa: E402
from gaitgraph.evaluation.tables import show  # noqa: E402
from gaitgraph.utils import atomic_write  # noqa: E402


def describe_retrieval(result: RetrievalResult) -> str:
    """One line naming the protocol and the choices that change its numbers."""
    return (
        f"protocol {result.protocol}: {result.n_probes} probes against the whole gallery of {result.n_gallery}, "
        f"{result.n_scored} scored (probes without a true match -> {result.missing_gallery}), "
        f"{result.distance} distance"
    )


def retrieval_table(result: RetrievalResult, title: str, baseline: RetrievalResult | None = None) -> Table:
    """Rank-k %, mAP % and mINP % (two decimals, as GREW and Gait3D report them), the baseline below."""
    table = Table(title=title, caption=describe_retrieval(result))
    table.add_column("%", style="bold")
    for column in result.table.columns:
        table.add_column(column, justify="right")
    rows = [("model", result)] + ([("baseline", baseline)] if baseline is not None else [])
    for name, res in rows:
        table.add_row(name, *(_pct(v) for v in res.table.iloc[0]))
    return table


def print_retrieval(
    result: RetrievalResult, title: str, console: Console | None = None, baseline: RetrievalResult | None = None
) -> None:
    """Print :func:`retrieval_table`, never cut (:func:`~gaitgraph.evaluation.tables.show`)."""
    console = console or Console()
    show(retrieval_table(result, title, baseline), console)
    if result.submission is not None:
        console.print(f"{result.protocol}: probe identities are not published; see its submission.csv")


def save_retrieval(result: RetrievalResult, out_dir: Path, prefix: str = "") -> dict[str, Path]:
    """Write ``{prefix}results.csv``, ``{prefix}results.json``, ``{prefix}cmc.png`` (only when some probe was
    scored: a submission protocol, whose probe identities are not published, has no curve to draw) and, for a
    submission protocol, ``{prefix}submission.csv`` (``videoId,rank1,...,rank20``); each file complete or absent."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = {"csv": "results.csv", "json": "results.json"}
    if any(math.isfinite(v) for v in result.rank_rates.values()):
        names["png"] = "cmc.png"
    if result.submission is not None:
        names["submission"] = "submission.csv"
    paths = {kind: out_dir / f"{prefix}{name}" for kind, name in names.items()}
    atomic_write(paths["csv"], lambda tmp: result.table.to_csv(tmp, float_format="%.6f"))
    atomic_write(paths["json"], lambda tmp: tmp.write_text(json.dumps(result.to_dict(), indent=2)))
    if "png" in paths:
        atomic_write(paths["png"], lambda tmp: _cmc_plot(result, tmp))
    if result.submission is not None:
        atomic_write(paths["submission"], lambda tmp: result.submission.to_csv(tmp, index=False))
    return paths


def _cmc_plot(result: RetrievalResult, path: Path) -> None:
    """Rank-k accuracy against k (the reported ranks), with mAP and mINP in the title."""
    ks = list(result.rank_rates)
    fig, ax = plt.subplots(figsize=(4.5, 3.2), layout="constrained")
    ax.plot(ks, [result.rank_rates[k] * 100 for k in ks], marker="o")
    ax.set_xticks(ks)
    ax.set_ylim(0, 100)
    ax.set_xlabel("rank k")
    ax.set_ylabel("rank-k accuracy %")
    ax.set_title(f"{result.protocol}: mAP {_pct(result.mean_map)}, mINP {_pct(result.mean_inp)}", fontsize=9)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


def _pct(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value * 100:.2f}"
