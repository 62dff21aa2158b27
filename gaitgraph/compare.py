"""Compare the runs of one multirun/sweep folder: ranked table (terminal + CSV) and plots.

    python scripts/compare_runs.py outputs/multirun/<date>/<time>

Every job folder (one holding ``.hydra/overrides.yaml``) is a row: its swept hyper-parameters (the
overrides whose value differs between jobs), status (``ok`` with a ``metrics.json``, else ``failed``) and
metric. Writes ``<dir>/comparison/``: runs.csv, metric_per_trial.png, metric_vs_<param>.png and, when the
sweep's Optuna study is found, param_importances.png.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

# Importing the package registers the ${gg.root:} resolver that the saved job configs use.
from gaitgraph.sweeps import study_location  # noqa: E402
from gaitgraph.utils import atomic_write  # noqa: E402

log = logging.getLogger(__name__)
OUT = "comparison"
FIXED_COLUMNS = ("rank", "job", "status", "metric", "train_seconds", "run_dir")


@dataclass
class Sweep:
    """One multirun folder, read."""

    root: Path
    runs: pd.DataFrame  # one row per job, ranked; columns FIXED_COLUMNS + params
    params: list[str]  # the swept hyper-parameters
    study: tuple[str, str] | None  # (study_name, storage URL) when the jobs came from an optuna* sweep


def parse_override(text: str) -> tuple[str, object]:
    """``"a.b=0.1"`` -> ``("a.b", 0.1)``; ``+``/``++`` prefixes dropped; values typed as YAML reads them."""
    key, _, value = text.partition("=")
    key = key.lstrip("+")
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError:
        parsed = value
    # Lists and dicts compare and print as their override text.
    return key, value if isinstance(parsed, (list, dict)) or parsed is None else parsed


def rank_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """Sort by metric, best first (failed runs last, by job), and number the ranks from 1."""
    ordered = runs.assign(_failed=runs["metric"].isna()).sort_values(
        ["_failed", "metric", "job"], ascending=[True, False, True], kind="stable"
    )
    ordered = ordered.drop(columns="_failed").reset_index(drop=True)
    ordered.insert(0, "rank", range(1, len(ordered) + 1))
    return ordered


def swept_params(overrides: list[dict[str, object]]) -> list[str]:
    """The override keys whose values are not the same in every job (fixed overrides are context)."""
    keys = sorted({k for o in overrides for k in o})
    return [k for k in keys if len({repr(o.get(k)) for o in overrides}) > 1]


def _job_key(path: Path) -> tuple[int, str]:
    return (int(path.name), "") if path.name.isdigit() else (1 << 30, path.name)


def load_sweep(root: str | Path) -> Sweep:
    """Read every job of a multirun folder; raise FileNotFoundError when it holds none."""
    root = Path(root)
    job_dirs = sorted(
        (p.parent.parent for p in root.rglob(".hydra/overrides.yaml") if OUT not in p.relative_to(root).parts),
        key=_job_key,
    )
    if not job_dirs:
        raise FileNotFoundError(f"{root}: no job folders (expected <job>/.hydra/overrides.yaml below it)")
    overrides, rows = [], []
    for job_dir in job_dirs:
        overrides.append(dict(parse_override(o) for o in yaml.safe_load((job_dir / ".hydra/overrides.yaml")
                                                                         .read_text()) or []))
        metrics_file = job_dir / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        metric = metrics.get("metric")
        ok = metric is not None and math.isfinite(float(metric))
        rows.append({
            "job": job_dir.name,
            "status": "ok" if ok else "failed",
            "metric": float(metric) if ok else np.nan,
            "train_seconds": metrics.get("train_seconds", np.nan),
            "run_dir": str(job_dir),
        })
    params = swept_params(overrides)
    runs = pd.DataFrame(rows)
    for key in params:
        runs[key] = [o.get(key) for o in overrides]
    config = OmegaConf.load(job_dirs[0] / ".hydra/config.yaml")
    return Sweep(root=root, runs=rank_runs(runs), params=params, study=study_location(config))


def _save(fig: plt.Figure, path: Path) -> Path:
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
    plt.close(fig)
    return path


def _safe_name(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", key)


def plot_per_trial(runs: pd.DataFrame, path: Path) -> Path:
    """Metric of every job in launch order, the running best, failed jobs marked at the bottom."""
    by_job = runs.sort_values("job", key=lambda s: s.map(lambda j: _job_key(Path(j))))
    x = np.arange(len(by_job))
    metric = by_job["metric"].to_numpy(dtype=float) * 100
    fig, ax = plt.subplots(figsize=(max(5, 0.35 * len(x) + 2), 3.5), layout="constrained")
    ok = ~np.isnan(metric)
    ax.plot(x[ok], metric[ok], "o", label="trial")
    ax.plot(x, np.fmax.accumulate(np.where(ok, metric, -np.inf)), "-", drawstyle="steps-post", alpha=0.6,
            label="best so far")
    if (~ok).any():
        floor = np.nanmin(metric) if ok.any() else 0.0
        ax.plot(x[~ok], np.full((~ok).sum(), floor), "x", color="tab:red", label="failed")
    ax.set_xticks(x, by_job["job"], fontsize=7)
    ax.set_xlabel("job")
    ax.set_ylabel("metric (rank-1 %)")
    ax.legend(fontsize=7)
    return _save(fig, path)


def plot_vs_param(runs: pd.DataFrame, key: str, path: Path) -> Path:
    """Metric against one hyper-parameter: scatter for numbers (log axis over >= 1 decade), strips for choices."""
    done = runs[runs["status"] == "ok"]
    values, metric = done[key], done["metric"].to_numpy(dtype=float) * 100
    fig, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if numeric:
        ax.plot(values.to_numpy(dtype=float), metric, "o")
        positive = values[values > 0]
        if len(positive) == len(values) and len(values) and positive.max() / positive.min() >= 10:
            ax.set_xscale("log")
    else:
        labels = sorted({str(v) for v in runs[key]})
        where = {label: i for i, label in enumerate(labels)}
        ax.plot([where[str(v)] for v in values], metric, "o")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
    ax.set_xlabel(key)
    ax.set_ylabel("metric (rank-1 %)")
    return _save(fig, path)


def correlation_importances(frame: pd.DataFrame, params: list[str], target: str = "value") -> dict[str, float]:
    """Normalised |Spearman rho| of each parameter with the objective (choices ranked by their mean).

    The fallback when Optuna's fANOVA is unavailable (it needs scikit-learn): a cruder, model-free measure.
    """
    scores = {}
    for key in params:
        column = frame[key]
        if not pd.api.types.is_numeric_dtype(column):
            column = column.astype(str).map(frame.groupby(column.astype(str))[target].mean())
        rho = column.rank().corr(frame[target].rank())
        scores[key] = 0.0 if pd.isna(rho) else abs(float(rho))
    total = sum(scores.values())
    return {k: (v / total if total else 0.0) for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}


def study_importances(study_name: str, url: str) -> tuple[dict[str, float], str]:
    """Parameter importances over the study's completed trials: (importances, method).

    Raises LookupError with the reason when they cannot be computed.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LookupError(f"study storage {url} does not exist")
    try:
        study = optuna.load_study(study_name=study_name, storage=url)
    except Exception as err:  # noqa: BLE001 - unreachable server, missing study: both only skip the plot
        raise LookupError(f"cannot open study {study_name!r} at {url}: {err}") from err
    trials = study.trials_dataframe(attrs=("value", "params", "state"))
    trials = trials[trials["state"] == "COMPLETE"]
    params = [c.removeprefix("params_") for c in trials.columns if c.startswith("params_")]
    trials = trials.rename(columns=lambda c: c.removeprefix("params_"))
    varied = [p for p in params if trials[p].nunique() > 1]
    if len(trials) < 2 or not varied:
        raise LookupError(f"study {study_name!r} has {len(trials)} completed trials, too few to rank parameters")
    try:
        return dict(optuna.importance.get_param_importances(study, params=varied)), "Optuna fANOVA"
    except ImportError:
        return correlation_importances(trials, varied), "|Spearman rho| (fANOVA needs scikit-learn)"


def plot_importances(importances: dict[str, float], method: str, title: str, path: Path) -> Path:
    """Horizontal bars, most important on top."""
    keys = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(keys) + 1.5), layout="constrained")
    ax.barh(keys, [importances[k] for k in keys])
    ax.set_xlabel(f"importance ({method})")
    ax.set_title(title, fontsize=9)
    return _save(fig, path)


def print_table(sweep: Sweep, console: Console) -> None:
    """The ranked runs as a rich table."""
    table = Table(title=f"{sweep.root}: {len(sweep.runs)} runs, ranked by metric (rank-1 %)")
    for column in ("rank", "job", "status", "metric", *sweep.params, "train s"):
        table.add_column(column, justify="left" if column in ("job", "status") else "right", overflow="fold")
    for row in sweep.runs.to_dict("records"):
        metric = "-" if pd.isna(row["metric"]) else f"{row['metric'] * 100:.1f}"
        seconds = "-" if pd.isna(row["train_seconds"]) else f"{row['train_seconds']:.0f}"
        table.add_row(str(row["rank"]), str(row["job"]), row["status"], metric,
                      *(_fmt(row[p]) for p in sweep.params), seconds)
    console.print(table)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def compare(root: str | Path, console: Console | None = None) -> dict[str, Path]:
    """Read a multirun folder and write its comparison; returns the written files by name."""
    console = console or Console()
    sweep = load_sweep(root)
    out = sweep.root / OUT
    out.mkdir(exist_ok=True)
    print_table(sweep, console)
    written = {"csv": out / "runs.csv"}
    atomic_write(written["csv"], lambda tmp: sweep.runs.to_csv(tmp, index=False))
    written["metric_per_trial"] = plot_per_trial(sweep.runs, out / "metric_per_trial.png")
    for key in sweep.params:
        written[f"metric_vs_{key}"] = plot_vs_param(sweep.runs, key, out / f"metric_vs_{_safe_name(key)}.png")
    if sweep.study is None:
        console.print("parameter importances: skipped (these jobs do not come from an hparams_search=optuna* sweep)")
    else:
        name, url = sweep.study
        try:
            importances, method = study_importances(name, url)
        except LookupError as err:
            console.print(f"parameter importances: skipped ({err})")
        else:
            written["param_importances"] = plot_importances(
                importances, method, f"study {name}", out / "param_importances.png"
            )
            console.print(f"parameter importances of study {name!r} ({method}): "
                          + ", ".join(f"{k} {v:.2f}" for k, v in importances.items()))
    console.print(f"comparison written to {out}")
    return written
