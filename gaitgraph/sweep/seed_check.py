"""Is a sweep's spread real? Re-run its best and its worst trial with other seeds and compare the ranges.

    python scripts/seed_check.py outputs/multirun/<date>/<time> [--seeds 1 2]

A sweep ranks trials by one number each, and on a small validation split seed-to-seed noise alone can order
them. This reruns the best and the worst finished trial of a sweep folder as single runs with the same
overrides but other ``trainer.seed`` values (in ``<sweep>/seed_check/<best|worst>-seed<S>/``), then prints
both trials' objective over all their seeds. The difference is called real only when the ranges do not
overlap: every run of the best setting beats every run of the worst. ``seed_check/summary.json`` keeps the
numbers. Each retraining takes as long as a trial: a line says what is retrained, and one per finished run gives
its value, its time and an estimate of the time left.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from gaitgraph.evaluation.tables import show
from gaitgraph.sweep.study import JOB_KEYS
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
    """The trial's overrides as one single run with ``seed``, written to ``run_dir``; without the pose baseline, which
    the trial scored already and which is the same for every seed."""
    keep = [o for o in trial.overrides if _key(o) not in (*JOB_KEYS, "trainer.seed", "baseline")]
    return [*keep, f"trainer.seed={seed}", "baseline=false", f"hydra.run.dir={run_dir}"]


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
    plan = [(label, trial, seed) for label, trial in chosen.items() for seed in seeds if seed != trial.seed]
    _say(console, f"seed check: retraining {len(plan)} runs in {sweep_dir / OUT} ({_plan_text(chosen, seeds)})")
    values = retrain(plan, sweep_dir, console)
    for label, trial in chosen.items():
        runs = {trial.seed: trial.metric} | {seed: v for (run, seed), v in values.items() if run == label}
        summary[label] = {"job": trial.job, "setting": swept_setting(trial, trials), "by_seed": runs}
    summary["verdict"] = verdict(*(list(summary[k]["by_seed"].values()) for k in ("best", "worst")))
    write_json(summary, sweep_dir / OUT / "summary.json")
    _print(summary, console)
    return summary


def retrain(plan: list[tuple[str, Trial, int]], sweep_dir: Path, console: Console) -> dict[tuple[str, int], float]:
    """Run every ``(label, trial, seed)`` of ``plan`` (into ``seed_check/<label>-seed<seed>``), printing a line with
    the time left after each; ``(label, seed) -> objective``."""
    values, start = {}, time.monotonic()
    for done, (label, trial, seed) in enumerate(plan, 1):
        began = time.monotonic()
        value = values[label, seed] = run_repeat(trial, seed, sweep_dir / OUT / f"{label}-seed{seed}")
        now = time.monotonic()
        what = f"{label} (job {trial.job}) seed {seed}"
        _say(console, progress_line(done, len(plan), what, value, now - began, now - start))
    return values


def progress_line(done: int, total: int, what: str, value: float, took: float, elapsed: float) -> str:
    """One line per finished repeat: ``[2/4] worst (job 5) seed 1: 61.9 % in 52 s; about 1 min 44 s left``."""
    left = elapsed / done * (total - done)
    eta = "done" if done == total else f"about {_duration(left)} left"
    return f"seed check [{done}/{total}] {what}: {value * 100:.1f} % in {_duration(took)}; {eta}"


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def _plan_text(chosen: dict[str, Trial], seeds: list[int]) -> str:
    jobs = ", ".join(f"{label} job {trial.job}" for label, trial in chosen.items())
    return f"{jobs}; seeds {', '.join(map(str, seeds))}, each as long as one trial"


def _say(console: Console, line: str) -> None:
    console.print(line, markup=False, highlight=False, soft_wrap=True)


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
