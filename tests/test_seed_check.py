"""The seed check's pure parts: which trials, which overrides, and when a difference counts as real."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

import gaitgraph.sweep.seed_check as seed_check_module
from gaitgraph.sweep.seed_check import (
    Trial,
    finished_trials,
    main,
    repeat_overrides,
    seed_check,
    swept_setting,
    verdict,
)


def _trial(job: str, lr: str, metric: float) -> Trial:
    overrides = [f"optimizer.optimizer.lr={lr}", "hparams_search=optuna_small", "trainer.epochs=10"]
    overrides += ["hparams_search.study_name=s-1", f"hparams_search.trial_number={job}"]
    return Trial(job, overrides, 5318008, metric, "val/rank1")


def test_ranges_that_do_not_overlap_are_real_and_overlapping_ones_are_noise():
    assert verdict([0.99, 1.0, 0.97], [0.66, 0.77, 0.70]).startswith("real:")
    assert "means 27.7 points apart; largest seed-to-seed spread 11.0 points" in verdict(
        [0.99, 1.0, 0.97], [0.66, 0.77, 0.70]
    )
    # 72.6 % against 61.4 % looked like a signal, but another seed of the best setting gave 58.3 %
    assert verdict([0.726, 0.583, 0.70], [0.614, 0.65]).startswith("within seed noise:")


def test_a_repeat_keeps_the_setting_and_drops_the_bookkeeping(tmp_path: Path):
    trial = _trial("3", "0.005", 0.9)
    trial.overrides.append("trainer.seed=7")
    assert repeat_overrides(trial, 2, tmp_path / "r") == [
        "optimizer.optimizer.lr=0.005",
        "hparams_search=optuna_small",
        "trainer.epochs=10",
        "trainer.seed=2",
        "baseline=false",
        f"hydra.run.dir={tmp_path / 'r'}",
    ]


def test_the_setting_is_what_the_trials_do_not_share():
    trials = [_trial("0", "0.005", 0.9), _trial("1", "0.0001", 0.6)]
    assert swept_setting(trials[1], trials) == ["optimizer.optimizer.lr=0.0001"]


def test_a_folder_without_finished_jobs_is_an_error_and_one_trial_is_skipped(tmp_path: Path, capsys):
    assert main([str(tmp_path)]) == 1
    assert "no finished job" in capsys.readouterr().err
    for name, metric in (("0", 0.9), ("1", float("nan"))):  # a job without a finite objective is not a trial
        job = tmp_path / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text("- optimizer.optimizer.lr=0.005\n")
        (job / ".hydra" / "config.yaml").write_text("trainer:\n  seed: 3\n")
        (job / "metrics.json").write_text(json.dumps({"metric": metric, "metric_name": "val/rank1"}))
    assert finished_trials(tmp_path) == [Trial("0", ["optimizer.optimizer.lr=0.005"], 3, 0.9, "val/rank1")]
    assert main([str(tmp_path)]) == 0
    assert "seed check: skipped" in capsys.readouterr().out


def test_each_retrained_run_prints_a_progress_line_with_the_time_left(tmp_path: Path, monkeypatch):
    for name, metric in (("0", 0.9), ("1", 0.6), ("2", 0.7)):
        job = tmp_path / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "overrides.yaml").write_text(f"- optimizer.optimizer.lr=0.00{name}5\n")
        (job / ".hydra" / "config.yaml").write_text("trainer:\n  seed: 3\n")
        (job / "metrics.json").write_text(json.dumps({"metric": metric, "metric_name": "val/rank1"}))
    clock = iter(range(0, 1000, 10))  # every reading of the clock is 10 s after the one before
    monkeypatch.setattr(seed_check_module.time, "monotonic", lambda: next(clock))
    repeats = []

    def fake_repeat(trial: Trial, seed: int, run_dir: Path) -> float:
        repeats.append((trial.job, seed, run_dir.name))
        return trial.metric - seed / 100

    monkeypatch.setattr(seed_check_module, "run_repeat", fake_repeat)
    out = io.StringIO()
    summary = seed_check(tmp_path, [1, 2], console=Console(file=out, width=200))
    assert repeats == [("0", 1, "best-seed1"), ("0", 2, "best-seed2"), ("1", 1, "worst-seed1"), ("1", 2, "worst-seed2")]
    assert summary["best"]["by_seed"] == {3: 0.9, 1: 0.89, 2: 0.88}
    lines = out.getvalue().splitlines()
    assert (
        lines[0].startswith("seed check: retraining 4 runs in ") and "best job 0, worst job 1; seeds 1, 2" in lines[0]
    )
    # the clock: 0 at the start, then 10 s before and after each run, so each took 10 s and 20 s pass per run
    assert lines[1:5] == [
        "seed check [1/4] best (job 0) seed 1: 89.0 % in 10 s; about 1 min 0 s left",
        "seed check [2/4] best (job 0) seed 2: 88.0 % in 10 s; about 40 s left",
        "seed check [3/4] worst (job 1) seed 1: 59.0 % in 10 s; about 20 s left",
        "seed check [4/4] worst (job 1) seed 2: 58.0 % in 10 s; done",
    ]
