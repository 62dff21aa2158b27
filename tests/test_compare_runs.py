"""scripts/compare_runs.py on multirun folders the tests build, with known metrics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from PIL import Image

from gaitgraph import ROOT
from gaitgraph.compare import compare, correlation_importances, load_sweep, parse_override, rank_runs

# job -> (lr, model, metric or None for a failed job)
JOBS = {
    "0": (1e-3, "resgcn_n21_r8", 0.40),
    "1": (1e-2, "resgcn_n39_r8", 0.70),
    "2": (1e-4, "resgcn_n21_r8", None),
    "3": (5e-3, "resgcn_n39_r8", 0.55),
    "10": (2e-3, "resgcn_n21_r8", 0.10),
}


def _make_multirun(root: Path, config: dict | None = None) -> Path:
    for job, (lr, model, metric) in JOBS.items():
        hydra_dir = root / job / ".hydra"
        hydra_dir.mkdir(parents=True)
        overrides = [f"optimizer.optimizer.lr={lr}", f"model={model}", "trainer.epochs=1", "+tag=[1,2]"]
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
        (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config or {"task_name": "t"}))
        if metric is not None:
            (root / job / "metrics.json").write_text(json.dumps({"metric": metric, "train_seconds": 3.0}))
    return root


def test_parse_override_types_values():
    assert parse_override("optimizer.optimizer.lr=0.001") == ("optimizer.optimizer.lr", 0.001)
    assert parse_override("+trainer.batch_size=64") == ("trainer.batch_size", 64)
    assert parse_override("model=resgcn_n21_r8") == ("model", "resgcn_n21_r8")
    assert parse_override("dataset.split.train_subjects=[0,1]") == ("dataset.split.train_subjects", "[0,1]")


def test_rank_runs_best_first_failed_last():
    runs = pd.DataFrame({"job": ["0", "1", "2"], "metric": [0.2, float("nan"), 0.9]})
    ranked = rank_runs(runs)
    assert ranked["job"].tolist() == ["2", "0", "1"]
    assert ranked["rank"].tolist() == [1, 2, 3]


def test_compare_ranks_writes_csv_and_plots(tmp_path: Path):
    root = _make_multirun(tmp_path / "multirun")
    sweep = load_sweep(root)
    # Only the overrides that vary are hyper-parameters; trainer.epochs and +tag are the same everywhere.
    assert sweep.params == ["model", "optimizer.optimizer.lr"]
    assert sweep.study is None

    written = compare(root)
    table = pd.read_csv(written["csv"], dtype={"job": str})
    assert table["job"].tolist() == ["1", "3", "0", "10", "2"]
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["status"].tolist() == ["ok"] * 4 + ["failed"]
    assert table["metric"].iloc[0] == pytest.approx(0.70)
    assert table["optimizer.optimizer.lr"].iloc[0] == pytest.approx(1e-2)
    assert table["model"].iloc[0] == "resgcn_n39_r8"
    out = root / "comparison"
    for name in ("metric_per_trial.png", "metric_vs_model.png", "metric_vs_optimizer.optimizer.lr.png"):
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.width > 100
    assert not (out / "param_importances.png").exists()
    # Running it again reads the same jobs (the comparison folder is not taken for a job).
    assert len(load_sweep(root).runs) == len(JOBS)


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_importances_from_the_sweeps_study(tmp_path: Path):
    db = tmp_path / "optuna" / "s.db"
    db.parent.mkdir()
    url = f"sqlite:///{db}"
    study = optuna.create_study(study_name="s", storage=url, direction="maximize")
    space = {"optimizer.optimizer.lr": optuna.distributions.LogUniformDistribution(1e-5, 1e-1),
             "model": optuna.distributions.CategoricalDistribution(["resgcn_n21_r8", "resgcn_n39_r8"])}
    for lr, model, metric in JOBS.values():
        study.add_trial(optuna.trial.create_trial(
            params={"optimizer.optimizer.lr": lr, "model": model}, distributions=space, value=metric,
            state=optuna.trial.TrialState.COMPLETE if metric is not None else optuna.trial.TrialState.FAIL,
        ))
    config = {"hparams_search": {"study_name": "s", "storage": None, "sqlite_path": str(db)}}
    root = _make_multirun(tmp_path / "multirun", config)
    assert load_sweep(root).study == ("s", url)
    written = compare(root)
    with Image.open(written["param_importances"]) as image:
        assert image.format == "PNG"


def test_missing_study_storage_is_skipped_with_a_note(tmp_path: Path, capsys):
    config = {"hparams_search": {"study_name": "s", "storage": None, "sqlite_path": str(tmp_path / "none.db")}}
    root = _make_multirun(tmp_path / "multirun", config)
    written = compare(root)
    assert "param_importances" not in written
    assert "parameter importances: skipped" in capsys.readouterr().out


def test_correlation_importances_find_the_parameter_that_matters():
    frame = pd.DataFrame({"lr": [1, 2, 3, 4, 5], "noise": [3, 1, 4, 1, 5], "model": list("ababa"),
                          "value": [0.1, 0.2, 0.3, 0.4, 0.5]})
    scores = correlation_importances(frame, ["lr", "noise", "model"])
    assert list(scores)[0] == "lr"
    assert sum(scores.values()) == pytest.approx(1.0)


def test_script_fails_clearly_on_a_folder_without_jobs(tmp_path: Path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "compare_runs.py"), str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "no job folders" in result.stderr and str(tmp_path) in result.stderr
