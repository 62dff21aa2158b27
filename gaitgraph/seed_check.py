"""Is a sweep's spread real? Re-run its best and its worst trial with other seeds and compare the ranges.

    python scripts/seed_check.py outputs/multirun/<date>/<time> [--seeds 1 2]

A sweep ranks trials by one number each, and on a small validation split seed-to-seed noise alone can order
them. This reruns the best and the worst finished trial of a sweep folder as single runs with the same
overrides but other ``trainer.seed`` values (in ``<sweep>/seed_check/<best|worst>-seed<S>/``), then prints
both trials' objective over all their seeds. The difference is called real only when the ranges do not
overlap: every run of the best setting beats every run of the worst. ``seed_check/summary.json`` keeps the
numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from gaitgraph.evaluation.tables import show
from gaitgraph.sweeps import JOB_KEYS
from gaitgraph.utils import write_json

OUT = "seed_check"


@dataclass
class Trial:
    """A finished job of the sweep: its folder, overrides (the setting), seed and objective value."""

    job: str
    overrides: list[str]
    seed: int
    metric: float
    metric_name: str


def finished_trials(sweep_dir: Path) -> list[Trial]:
    """The sweep's jobs (``<sweep_dir>/<n>/``) that wrote a finite objective, in job order."""
    trials = []
    for metrics_file in sorted(sweep_dir.glob("*/metrics.json"), key=lambda p: _job_order(p.parent.name)):
        metrics = json.loads(metrics_file.read_text())
        job = metrics_file.parent
        if not isinstance(metrics.get("metric"), (int, float)) or not math.isfinite(metrics["metric"]):
            continue
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text()) or []
        seed = OmegaConf.load(job / ".hydra" / "config.yaml").trainer.seed
        trials.append(Trial(job.name, list(overrides), int(seed), float(metrics["metric"]), metrics["metric_name"]))
    return trials


def _job_order(name: str) -> tuple[int, str]:
    return (int(name), "") if name.isdigit() else (sys.maxsize, name)


def repeat_overrides(trial: Trial, seed: int, run_dir: Path) -> list[str]:
    """The trial's overrides as one single run with ``seed``, written to ``run_dir``."""
    keep = [o for o in trial.overrides if _key(o) not in (*JOB_KEYS, "trainer.seed")]
    return [*keep, f"trainer.seed={seed}", f"hydra.run.dir={run_dir}"]


def run_repeat(trial: Trial, seed: int, run_dir: Path) -> float:
    """Train the trial's setting with ``seed`` in a fresh process; its objective value."""
    command = [sys.executable, "-m", "gaitgraph.train", *repeat_overrides(trial, seed, run_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"the repeat of job {trial.job} with seed {seed} failed ({run_dir / 'train.log'}):\n{tail}")
    return float(json.loads((run_dir / "metrics.json").read_text())["metric"])


def verdict(best: list[float], worst: list[float]) -> str:
    """Whether the best setting beats the worst beyond seed noise: the two ranges must not overlap."""
    gap = sum(best) / len(best) - sum(worst) / len(worst)
    noise = max(max(best) - min(best), max(worst) - min(worst))
    numbers = f"means {gap * 100:.1f} points apart; largest seed-to-seed spread {noise * 100:.1f} points"
    if min(best) > max(worst):
        return f"real: every run of the best setting beats every run of the worst ({numbers})"
    return f"within seed noise: the ranges overlap ({numbers}); more epochs or a larger validation split would tell"


def seed_check(sweep_dir: str | Path, seeds: list[int], console: Console | None = None) -> dict | None:
    """Rerun the best and worst finished trial of ``sweep_dir`` with ``seeds``; print and return the summary
    (None, said on the console, when fewer than two trials finished: there is nothing to tell apart)."""
    sweep_dir, console = Path(sweep_dir), console or Console()
    trials = finished_trials(sweep_dir)
    if not trials:
        raise FileNotFoundError(f"{sweep_dir}: no finished job (<n>/metrics.json with a metric) in this folder")
    if len(trials) < 2:
        console.print(
            "seed check: skipped, it needs two finished trials and the sweep has one", markup=False, soft_wrap=True
        )
        return None
    chosen = {"best": max(trials, key=lambda t: t.metric), "worst": min(trials, key=lambda t: t.metric)}
    summary: dict = {"metric_name": trials[0].metric_name, "seeds": seeds}
    for label, trial in chosen.items():
        runs = {trial.seed: trial.metric}
        for seed in (s for s in seeds if s != trial.seed):
            runs[seed] = run_repeat(trial, seed, sweep_dir / OUT / f"{label}-seed{seed}")
        summary[label] = {"job": trial.job, "setting": swept_setting(trial, trials), "by_seed": runs}
    summary["verdict"] = verdict(*(list(summary[k]["by_seed"].values()) for k in ("best", "worst")))
    write_json(summary, sweep_dir / OUT / "summary.json")
    _print(summary, console)
    return summary


def swept_setting(trial: Trial, trials: list[Trial]) -> list[str]:
    """The trial's overrides that not every trial shares (what the sweep chose), the sweeper's bookkeeping left out."""
    shared = set.intersection(*(set(t.overrides) for t in trials))
    return [o for o in trial.overrides if o not in shared and _key(o) not in JOB_KEYS]


def _key(override: str) -> str:
    """``"+a.b=1"`` -> ``"a.b"``."""
    return override.split("=", 1)[0].lstrip("+~")


def _print(summary: dict, console: Console) -> None:
    table = Table(title=f"seed check: {summary['metric_name']} (%) of the best and the worst trial")
    for column in ("trial", "job", "setting", "by seed", "range"):
        table.add_column(column)
    for label in ("best", "worst"):
        row = summary[label]
        values = row["by_seed"]
        table.add_row(
            label,
            row["job"],
            " ".join(row["setting"]),
            ", ".join(f"{seed}: {value * 100:.1f}" for seed, value in values.items()),
            f"{min(values.values()) * 100:.1f}-{max(values.values()) * 100:.1f}",
        )
    show(table, console)
    console.print(f"seed check: {summary['verdict']}", markup=False, highlight=False, soft_wrap=True)


def main(argv: list[str]) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="seed_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2], help="extra seeds per trial (default 1 2)")
    args = parser.parse_args(argv)
    try:
        seed_check(args.sweep_dir, args.seeds)
    except (FileNotFoundError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0
