"""The seed check's pure parts: which trials, which overrides, and when a difference counts as real."""

from __future__ import annotations

import json
from pathlib import Path

from gaitgraph.seed_check import Trial, finished_trials, main, repeat_overrides, swept_setting, verdict


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
