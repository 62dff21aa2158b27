"""The pictures of ``gaitgraph.sweep.compare``: metric per trial and per swept parameter, parameter importances, and
Optuna's own history and slice plots. Every figure has a fixed pixel size (no tight cropping)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator, NullFormatter  # noqa: E402

from gaitgraph.evaluation.plots import save_figure  # noqa: E402

FIGSIZE, DPI = (7.0, 4.0), 100
#: Width per parameter of Optuna's slice plot (one panel each).
SLICE_WIDTH = 3.5


@dataclass
class References:
    """What a metric is read against: its name, chance level and the pose baseline (fractions; None = unknown)."""

    metric_name: str = "metric (rank-1 %)"
    chance: float | None = None
    baseline: float | None = None


def safe_name(key: str) -> str:
    """A file-name-safe form of a parameter or group name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def _references(ax: plt.Axes, refs: References, values: np.ndarray) -> None:
    """Chance and baseline lines; the y range spans them (or 0 when neither is known), so a spread of a
    point or two is seen against what it would take to matter."""
    lines = [(refs.chance, "chance", "tab:grey", ":"), (refs.baseline, "pose baseline", "tab:orange", "--")]
    for value, label, color, style in lines:
        if value is not None:
            ax.axhline(value * 100, color=color, linestyle=style, linewidth=1, label=f"{label} {value * 100:.1f}")
    known = [v * 100 for v, *_ in lines if v is not None] or [0.0]
    finite = values[np.isfinite(values)]
    low, high = min([*known, *finite]), max([*known, *finite])
    pad = max(1.0, 0.08 * (high - low))
    ax.set_ylim(max(0.0, low - pad), min(100.0, high + pad))
    ax.set_ylabel(refs.metric_name)


def plot_per_trial(runs: pd.DataFrame, path: Path, refs: References) -> Path:
    """Metric of every job in launch order, the running best, failed jobs marked at the bottom."""
    metric = runs["metric"].to_numpy(dtype=float) * 100
    x = np.arange(len(runs))
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    ok = ~np.isnan(metric)
    ax.plot(x[ok], metric[ok], "o", label="trial")
    ax.plot(
        x,
        np.fmax.accumulate(np.where(ok, metric, -np.inf)),
        "-",
        drawstyle="steps-post",
        alpha=0.6,
        label="best so far",
    )
    _references(ax, refs, metric)
    if (~ok).any():
        ax.plot(x[~ok], np.full((~ok).sum(), ax.get_ylim()[0]), "x", color="tab:red", clip_on=False, label="failed")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, nbins=12))
    ax.set_xlabel(f"trial (launch order, {len(runs)} jobs)")
    ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=DPI)


def plot_vs_param(runs: pd.DataFrame, key: str, path: Path, refs: References, log: bool) -> Path:
    """Metric against one swept parameter: a scatter for numbers (log axis when it was sampled log-uniform),
    strips for choices."""
    done = runs[runs["status"] == "ok"]
    values, metric = done[key], done["metric"].to_numpy(dtype=float) * 100
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        ax.plot(values.to_numpy(dtype=float), metric, "o")
        if log and (values > 0).all():
            ax.set_xscale("log")
    else:
        labels = sorted({str(v) for v in runs[key]})
        where = {label: i for i, label in enumerate(labels)}
        ax.plot([where[str(v)] for v in values], metric, "o")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    _references(ax, refs, metric)
    ax.set_xlabel(f"{key}{' (log-sampled)' if log else ''}")
    ax.set_title(f"{len(done)} completed trials", fontsize=9)
    if refs.chance is not None or refs.baseline is not None:
        ax.legend(fontsize=7)
    return save_figure(fig, path, dpi=DPI)


def _wrapped(text: str, width: int) -> str:
    """``text`` in lines of at most ``width`` characters, broken after dots and spaces (a config key such as
    ``optimizer.optimizer.weight_decay`` keeps its words whole) and inside a word only when it is longer."""
    lines, line = [], ""
    parts = (word[i : i + width] for word in re.split(r"(?<=[. ])", text) for i in range(0, len(word), width))
    for part in parts:
        if line and len(line) + len(part) > width:
            lines.append(line.rstrip())
            line = ""
        line += part
    return "\n".join([*lines, line.rstrip()])


def plot_importances(importances: dict[str, float], method: str, n_trials: int, title: str, path: Path) -> Path:
    """Horizontal bars, most important on top; the number of trials they rest on is in the title. Long parameter
    names and titles are wrapped, so nothing is cut at the fixed size."""
    keys = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=FIGSIZE, layout="constrained")
    bars = ax.barh([_wrapped(k, 28) for k in keys], [importances[k] for k in keys])
    ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xlim(0, max(1.0, max(importances.values(), default=0) * 1.15))
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel(f"importance ({method})")
    few = " (few trials: noisy)" if n_trials < 20 else ""
    fig.suptitle(f"{_wrapped(title, 64)}\n{n_trials} completed trials{few}", fontsize=9)
    return save_figure(fig, path, dpi=DPI)


def plot_optuna(
    study: object, out: Path, params: list[str], objective: str = "objective (rank-1 %)"
) -> dict[str, Path]:
    """Optuna's own optimisation history and slice plots (matplotlib backend), at fixed sizes: the figures are
    created at that size with constrained layout, so Optuna's colour bar and labels are placed for it.
    ``objective`` labels the value axis (trial values are percentages)."""
    import optuna.visualization.matplotlib as ovm

    written = {}
    with plt.rc_context({"figure.figsize": FIGSIZE, "figure.constrained_layout.use": True}):
        ax = ovm.plot_optimization_history(study)
    ax.set_ylabel(objective)
    written["optuna_history"] = save_figure(ax.figure, out / "optuna_history.png", dpi=DPI)
    if params:
        # Optuna gives each of several panels half the rc width; one panel gets the whole width.
        width = FIGSIZE[0] if len(params) == 1 else 2 * SLICE_WIDTH
        with plt.rc_context({"figure.figsize": (width, FIGSIZE[1]), "figure.constrained_layout.use": True}):
            axes = np.atleast_1d(ovm.plot_slice(study, params=params))
        _readable_slices(axes, objective)
        written["optuna_slice"] = save_figure(axes.flat[0].figure, out / "optuna_slice.png", dpi=DPI)
    return written


def _readable_slices(axes: np.ndarray, objective: str) -> None:
    """Slice panels whose labels do not run into each other: small slanted ticks, wrapped parameter names, the
    objective named on the shared y axis, and a title that says what the points are."""
    for ax in axes.flat:
        ax.tick_params(axis="x", which="both", labelsize=7, labelrotation=30)
        if ax.get_xscale() == "log":  # the labels of 2x, 3x, ... 10^k run into each other on a narrow panel
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel(_wrapped(ax.get_xlabel(), 26), fontsize=8)
        ax.set_ylabel("")
    axes.flat[0].set_ylabel(objective, fontsize=8)
    axes.flat[0].figure.suptitle("objective of each trial against each swept parameter", fontsize=9)


def expected_size(name: str, n_params: int = 1) -> tuple[int, int]:
    """Pixel size of a comparison plot (``optuna_slice`` grows with the number of parameters)."""
    width = max(FIGSIZE[0], SLICE_WIDTH * n_params) if name == "optuna_slice" else FIGSIZE[0]
    return math.floor(width * DPI), math.floor(FIGSIZE[1] * DPI)
