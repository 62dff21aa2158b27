"""Compare the runs below a folder (a sweep, several sweeps, or ad-hoc runs): ranked tables and plots.

    python scripts/compare_runs.py outputs/multirun/<date>/<time>

Every job folder (one holding ``.hydra/overrides.yaml``) is a run. Runs are grouped by Optuna study and dataset
and ranked within their group only: numbers of different datasets or protocols are never ranked together.
Per group: the runs' swept hyper-parameters (the sweeper's search space, the study's distributions, or a
command-line sweep like ``a=1,2``; other overrides that differ are shown as context), status (``ok`` with a
``metrics.json``; ``pruned`` when the group's Optuna study says the pruner stopped the trial; else ``failed``),
the metric (the validation objective) and, beside it, the test mean rank-1 of the same protocol (reported only:
nothing is ranked or chosen on it). Writes ``<dir>/comparison/`` (one sub-folder per group when
there are several): runs.csv, metric_per_trial.png, metric_vs_<param>.png for swept parameters (log axis for
log-sampled ones), and from the group's Optuna study, when found: param_importances.png, optuna_history.png
and optuna_slice.png. Plots draw the chance level and the pose baseline that metrics.json records.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

import gaitgraph.conf  # noqa: F401 - the gg.* resolvers the saved job configs use
from gaitgraph.evaluation.tables import show
from gaitgraph.sweep.plots import (
    References,
    plot_importances,
    plot_optuna,
    plot_per_trial,
    plot_vs_param,
    safe_name,
)
from gaitgraph.sweep.study import JOB_KEYS, study_location
from gaitgraph.utils import atomic_write

log = logging.getLogger(__name__)
OUT = "comparison"
FIXED_COLUMNS = ("study", "dataset", "rank", "job", "status", "metric", "test_rank1", "train_seconds", "run_dir")


@dataclass
class Group:
    """The runs of one (study, dataset): ranked among themselves."""

    study: str | None
    dataset: str
    runs: pd.DataFrame  # FIXED_COLUMNS + params + context, ranked
    params: list[str]  # swept hyper-parameters (plotted)
    log_params: set[str]  # those sampled log-uniform
    context: list[str]  # other overrides that differ between runs (table only)
    storage: tuple[str, str] | None  # (study_name, storage URL)
    refs: References = field(default_factory=References)
    notes: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        """``<study or 'runs'>-<dataset>``: the group's folder name."""
        return safe_name(f"{self.study or 'runs'}-{self.dataset}")


@dataclass
class Sweep:
    """Every run below a folder, read and grouped."""

    root: Path
    runs: pd.DataFrame  # all runs, ranked within their group
    groups: list[Group]


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


def varying_overrides(overrides: list[dict[str, object]]) -> list[str]:
    """The override keys whose values are not the same in every job (the sweeper's bookkeeping left out)."""
    keys = sorted({k for o in overrides for k in o if k not in JOB_KEYS})
    return [k for k in keys if len({repr(o.get(k)) for o in overrides}) > 1]


def sweep_space(specs: Iterable[str]) -> dict[str, bool]:
    """``key -> log-sampled`` for the sweeps among Hydra override strings (``a=1,2``, ``choice(...)``,
    ``tag(log, interval(...))``); plain values (fixed for every job) are left out."""
    parser = OverridesParser.create()
    space = {}
    for spec in specs:
        try:
            override = parser.parse_override(str(spec))
        except HydraException:  # not in Hydra's override grammar: no sweep we can read
            continue
        if override.is_sweep_override():
            space[override.key_or_group] = "log" in getattr(override.value(), "tags", set())
    return space


def study_space(study: Any) -> dict[str, bool]:
    """``param -> log-sampled`` from an Optuna study's trial distributions."""
    space: dict[str, bool] = {}
    for trial in study.trials:
        for name, dist in trial.distributions.items():
            log_dist = type(dist).__name__ in ("LogUniformDistribution", "IntLogUniformDistribution")
            space[name] = space.get(name, False) or log_dist or bool(getattr(dist, "log", False))
    return space


def _job_key(job: str) -> tuple:
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in Path(job).parts)


def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _job_space(job_dir: Path) -> dict[str, bool]:
    """What the job's sweeper searched: ``hydra.sweeper.params`` and the sweep's command-line sweeps."""
    hydra_cfg = (_read_yaml(job_dir / ".hydra" / "hydra.yaml") or {}).get("hydra") or {}
    params = (hydra_cfg.get("sweeper") or {}).get("params") or {}
    multirun = (_read_yaml(job_dir.parent / "multirun.yaml") or {}).get("hydra") or {}
    task = (multirun.get("overrides") or {}).get("task") or []
    return sweep_space([f"{k}={v}" for k, v in params.items()] + list(task))


def read_job(root: Path, job_dir: Path) -> dict[str, Any]:
    """One run: its overrides, config facts, sweep space and metrics.json (empty when it failed)."""
    overrides = dict(parse_override(o) for o in _read_yaml(job_dir / ".hydra" / "overrides.yaml") or [])
    # an override such as `dataset=psymo10` would collide with the table's own columns
    overrides = {f"{k} (override)" if k in FIXED_COLUMNS else k: v for k, v in overrides.items()}
    config = (
        OmegaConf.load(job_dir / ".hydra" / "config.yaml")
        if (job_dir / ".hydra/config.yaml").is_file()
        else OmegaConf.create()
    )
    metrics_file = job_dir / "metrics.json"
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
    location = study_location(config, job_dir.parent)
    dataset = OmegaConf.select(config, "dataset.name", default=None, throw_on_resolution_failure=False)
    return {
        "job": job_dir.relative_to(root).as_posix(),
        "run_dir": str(job_dir),
        "overrides": overrides,
        "metrics": metrics,
        "space": _job_space(job_dir),
        "storage": location,
        "study": location[0] if location else None,
        "dataset": str(dataset or "unknown"),
    }


def references(metrics: list[dict[str, Any]]) -> tuple[References, list[str]]:
    """The metric's name, chance level and pose baseline recorded in the runs' metrics.json (``metric_name``,
    ``chance``, ``baseline_metric`` = the nearest-neighbour baseline scored like the metric, on the same split),
    with a note for each one absent."""
    name = next((str(m["metric_name"]) for m in metrics if m.get("metric_name")), "metric")
    chance = _first_number(metrics, "chance")
    baseline = _first_number(metrics, "baseline_metric")
    notes = []
    if chance is None:
        notes.append("chance line: skipped (no run's metrics.json records 'chance')")
    if baseline is None:
        notes.append(
            "baseline line: skipped (no run's metrics.json records a 'baseline_metric'; runs with baseline=false)"
        )
    return References(f"{name} (%)", chance, baseline), notes


def _first_number(metrics: list[dict[str, Any]], key: str) -> float | None:
    return next((float(m[key]) for m in metrics if isinstance(m.get(key), (int, float))), None)


def open_study(study_name: str, url: str) -> Any:
    """The Optuna study a sweep wrote; LookupError with the reason when it cannot be opened."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise LookupError(f"study storage {url} does not exist")
    try:
        return optuna.load_study(study_name=study_name, storage=url)
    except Exception as err:  # noqa: BLE001 - unreachable server, missing study: both only skip the plots
        raise LookupError(f"cannot open study {study_name!r} at {url}: {err}") from err


def rank1_on_test(metrics: dict[str, Any]) -> float:
    """The test mean rank-1 of the objective's protocol from a metrics.json (NaN when it holds none)."""
    value = ((metrics.get("test") or {}).get(metrics.get("metric_protocol")) or {}).get("mean_rank1")
    return float(value) if isinstance(value, (int, float)) else np.nan


def trial_states(study: Any) -> dict[int, str]:
    """``trial number -> state name`` (COMPLETE, PRUNED, FAIL, ...) of an Optuna study; empty without one."""
    return {t.number: t.state.name for t in study.get_trials(deepcopy=False)} if study is not None else {}


def run_status(job: dict[str, Any], states: dict[int, str]) -> str:
    """``ok`` (a finite metric), ``pruned`` (its trial, named by the sweeper's trial number, was pruned) or
    ``failed``."""
    metric = job["metrics"].get("metric")
    if isinstance(metric, (int, float)) and math.isfinite(metric):
        return "ok"
    number = job["overrides"].get(JOB_KEYS[1])  # the trial number the sweeper gave the job
    return "pruned" if states.get(number) == "PRUNED" else "failed"


def build_group(study: str | None, dataset: str, jobs: list[dict[str, Any]]) -> tuple[Group, Any]:
    """One group's ranked runs, swept parameters and references; also its Optuna study (None when not found)."""
    varying = varying_overrides([j["overrides"] for j in jobs])
    space: dict[str, bool] = {}
    for job in jobs:
        space |= job["space"]
    refs, notes = references([j["metrics"] for j in jobs])
    storage, opened = jobs[0]["storage"], None
    if storage is not None:
        try:
            opened = open_study(*storage)
            space |= study_space(opened)
        except LookupError as err:
            notes.append(f"Optuna study: skipped ({err})")
    params = [k for k in sorted(space) if k in varying]
    context = [k for k in varying if k not in space]
    rows, states = [], trial_states(opened)
    for job in jobs:
        status = run_status(job, states)
        rows.append(
            {
                "study": study or "",
                "dataset": dataset,
                "job": job["job"],
                "status": status,
                "metric": float(job["metrics"]["metric"]) if status == "ok" else np.nan,
                "test_rank1": rank1_on_test(job["metrics"]),
                "train_seconds": job["metrics"].get("train_seconds", np.nan),
                "run_dir": job["run_dir"],
                **{k: job["overrides"].get(k) for k in params + context},
            }
        )
    runs = rank_runs(pd.DataFrame(rows))
    runs = runs[[*FIXED_COLUMNS, *params, *context]]
    group = Group(study, dataset, runs, params, {k for k in params if space[k]}, context, storage, refs, notes)
    return group, opened


def load_sweep(root: str | Path) -> Sweep:
    """Read every run below ``root`` and group them; FileNotFoundError when it holds none."""
    return _load(root)[0]


def _load(root: str | Path) -> tuple[Sweep, list[Any]]:
    root = Path(root)
    job_dirs = sorted(
        (p.parent.parent for p in root.rglob(".hydra/overrides.yaml") if OUT not in p.relative_to(root).parts),
        key=lambda d: _job_key(d.relative_to(root).as_posix()),
    )
    if not job_dirs:
        raise FileNotFoundError(f"{root}: no job folders (expected <job>/.hydra/overrides.yaml below it)")
    by_group: dict[tuple[str | None, str], list[dict[str, Any]]] = {}
    for job_dir in job_dirs:
        job = read_job(root, job_dir)
        by_group.setdefault((job["study"], job["dataset"]), []).append(job)
    built = [
        build_group(s, d, jobs) for (s, d), jobs in sorted(by_group.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]
    groups, studies = [g for g, _ in built], [s for _, s in built]
    runs = pd.concat([g.runs for g in groups], ignore_index=True)
    return Sweep(root=root, runs=runs, groups=groups), studies


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


def study_importances(study: Any) -> tuple[dict[str, float], str, int]:
    """Parameter importances over the study's completed trials: (importances, method, completed trials).

    Raises LookupError with the reason when they cannot be computed.
    """
    import optuna

    trials = study.trials_dataframe(attrs=("value", "params", "state"))
    trials = trials[trials["state"] == "COMPLETE"] if len(trials) else trials
    params = [c.removeprefix("params_") for c in trials.columns if c.startswith("params_")]
    trials = trials.rename(columns=lambda c: c.removeprefix("params_"))
    varied = [p for p in params if trials[p].nunique() > 1]
    if len(trials) < 2 or not varied:
        raise LookupError(f"study {study.study_name!r} has {len(trials)} completed trials, too few to rank parameters")
    try:
        return dict(optuna.importance.get_param_importances(study, params=varied)), "Optuna fANOVA", len(trials)
    except ImportError:
        return correlation_importances(trials, varied), "|Spearman rho| (fANOVA needs scikit-learn)", len(trials)
    except ValueError:  # Optuna 2.10's fANOVA reads scikit-learn tree internals that later releases changed
        why = "Optuna 2.10's fANOVA fails on this scikit-learn"
        return correlation_importances(trials, varied), f"|Spearman rho| ({why})", len(trials)


def print_table(group: Group, console: Console) -> None:
    """The group's ranked runs (never cut: plain text when piped or too wide)."""
    where = f"study {group.study}, " if group.study else ""
    table = Table(title=f"{where}dataset {group.dataset}: {len(group.runs)} runs, ranked by {group.refs.metric_name}")
    for column in ("rank", "job", "status", "metric", "test rank-1", *group.params, *group.context, "train s"):
        table.add_column(column, justify="left" if column in ("job", "status") else "right", no_wrap=True)
    for row in group.runs.to_dict("records"):
        metric, test = ("-" if pd.isna(row[k]) else f"{row[k] * 100:.1f}" for k in ("metric", "test_rank1"))
        seconds = "-" if pd.isna(row["train_seconds"]) else f"{row['train_seconds']:.0f}"
        table.add_row(
            str(row["rank"]),
            str(row["job"]),
            row["status"],
            metric,
            test,
            *(_fmt(row[p]) for p in group.params + group.context),
            seconds,
        )
    show(table, console)


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def compare_group(group: Group, study: Any, out: Path, console: Console) -> dict[str, Path]:
    """Print one group's table and notes and write its plots into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    print_table(group, console)
    by_launch = group.runs.sort_values("job", key=lambda s: s.map(_job_key))
    written = {"metric_per_trial": plot_per_trial(by_launch, out / "metric_per_trial.png", group.refs)}
    for key in group.params:
        written[f"metric_vs_{key}"] = plot_vs_param(
            group.runs, key, out / f"metric_vs_{safe_name(key)}.png", group.refs, log=key in group.log_params
        )
    notes = list(group.notes)
    pruned = group.runs.loc[group.runs["status"] == "pruned", "job"].tolist()
    if pruned:
        jobs = ", ".join(pruned)
        notes.append(f"pruned (stopped early by the study's pruner on their validation curve): jobs {jobs}")
    if group.context:
        notes.append(f"not plotted (overrides that differ but were not swept): {', '.join(group.context)}")
    if study is not None:
        written |= _study_plots(group, study, out, notes)
    elif group.storage is None:
        notes.append("parameter importances: skipped (these runs do not come from an hparams_search=optuna* sweep)")
    for note in notes:
        console.print(note, markup=False, highlight=False)
    return written


def _study_plots(group: Group, study: Any, out: Path, notes: list[str]) -> dict[str, Path]:
    """Importances (with their trial count) and Optuna's history and slice plots of the group's study."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    written = {}
    try:
        importances, method, n_trials = study_importances(study)
    except LookupError as err:
        notes.append(f"parameter importances: skipped ({err})")
    else:
        written["param_importances"] = plot_importances(
            importances, method, n_trials, f"study {group.study}", out / "param_importances.png"
        )
        notes.append(
            f"parameter importances of study {group.study!r} over {n_trials} completed trials ({method}): "
            + ", ".join(f"{k} {v:.2f}" for k, v in importances.items())
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        try:
            written |= plot_optuna(study, out, [p for p in group.params if p in study_space(study)])
        except (ValueError, RuntimeError) as err:  # e.g. no completed trial yet
            notes.append(f"Optuna history/slice plots: skipped ({err})")
    return written


def compare(root: str | Path, console: Console | None = None) -> dict[str, Path]:
    """Read the runs below ``root`` and write their comparison; returns the written files by name
    (``<group>/<name>`` when there are several groups)."""
    console = console or Console()
    sweep, studies = _load(root)
    out = sweep.root / OUT
    out.mkdir(exist_ok=True)
    written = {"csv": out / "runs.csv"}
    atomic_write(written["csv"], lambda tmp: sweep.runs.to_csv(tmp, index=False))
    several = len(sweep.groups) > 1
    if several:
        console.print(
            f"{len(sweep.groups)} groups (study x dataset), each ranked on its own: "
            + ", ".join(g.name for g in sweep.groups),
            markup=False,
        )
    for group, study in zip(sweep.groups, studies):
        files = compare_group(group, study, out / group.name if several else out, console)
        written |= {(f"{group.name}/{k}" if several else k): v for k, v in files.items()}
    console.print(f"comparison written to {out}", markup=False, highlight=False)
    return written
