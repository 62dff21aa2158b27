"""scripts/compare_runs.py on run folders the tests build, with known metrics, sweeps and studies."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from PIL import Image

from gaitgraph import ROOT
from gaitgraph.sweep import plots as sweep_plots
from gaitgraph.sweep.compare import (
    compare,
    correlation_importances,
    load_sweep,
    parse_override,
    rank_runs,
    references,
    sweep_space,
)
from gaitgraph.sweep.plots import expected_size
from gaitgraph.sweep.study import STUDY_FILE

from .conftest import run_script
from .no_drawing import skip_drawing

# job -> (lr, model, metric or None for a failed job)
JOBS = {
    "0": (1e-3, "resgcn_n21_r8", 0.40),
    "1": (1e-2, "resgcn_n39_r8", 0.70),
    "2": (1e-4, "resgcn_n21_r8", None),
    "3": (5e-3, "resgcn_n39_r8", 0.55),
    "10": (2e-3, "resgcn_n21_r8", 0.10),
}
SEARCH = {"optimizer.optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "model": "choice(resgcn_n21_r8, resgcn_n39_r8)"}
SPLIT = "dataset.split.train_subjects"


def _write_job(job_dir: Path, overrides: list[str], config: dict, metrics: dict | None, sweeper_params=None):
    hydra_dir = job_dir / ".hydra"
    hydra_dir.mkdir(parents=True)
    (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (hydra_dir / "config.yaml").write_text(yaml.safe_dump(config))
    (hydra_dir / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"sweeper": {"params": sweeper_params}}}))
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))


def _make_multirun(root: Path, config: dict | None = None, metrics: dict | None = None) -> Path:
    """An Optuna-like sweep over lr (log) and model; trainer.epochs and +tag are fixed, so not swept."""
    for job, (lr, model, metric) in JOBS.items():
        overrides = [f"optimizer.optimizer.lr={lr}", f"model={model}", "trainer.epochs=1", "+tag=[1,2]"]
        _write_job(
            root / job,
            overrides,
            config or {"task_name": "t", "dataset": {"name": "psymo10"}},
            None if metric is None else {"metric": metric, "train_seconds": 3.0, **(metrics or {})},
            sweeper_params=SEARCH,
        )
    return root


class _Figures:
    """Every figure compare saves: its axes' scales, lines and titles, read before the file is written."""

    def __init__(self, monkeypatch):
        self.seen: dict[str, dict] = {}
        real = sweep_plots.save_figure

        def record(fig, path, *args, **kwargs):
            ax = fig.axes[0]
            self.seen[Path(path).name] = {
                "xscale": ax.get_xscale(),
                "ylim": ax.get_ylim(),
                "title": fig.get_suptitle() or ax.get_title(),
                "lines": [line.get_label() for line in ax.get_lines()],
            }
            return real(fig, path, *args, **kwargs)

        monkeypatch.setattr(sweep_plots, "save_figure", record)


def _open(path: Path, name: str, n_params: int = 1) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size == expected_size(name, n_params)


def test_parse_override_types_values():
    assert parse_override("optimizer.optimizer.lr=0.001") == ("optimizer.optimizer.lr", 0.001)
    assert parse_override("+trainer.batch_size=64") == ("trainer.batch_size", 64)
    assert parse_override("model=resgcn_n21_r8") == ("model", "resgcn_n21_r8")
    assert parse_override("dataset.split.train_subjects=[0,1]") == ("dataset.split.train_subjects", "[0,1]")


def test_sweep_space_finds_sweeps_and_log_tags():
    space = sweep_space(["a=1,2", "b=3", "lr=tag(log, interval(1e-4,1e-2))", "m=choice(x,y)", "+s=[1,2]", "bad=("])
    assert space == {"a": False, "lr": True, "m": False}


def test_rank_runs_best_first_failed_last():
    runs = pd.DataFrame({"job": ["0", "1", "2"], "metric": [0.2, float("nan"), 0.9]})
    ranked = rank_runs(runs)
    assert ranked["job"].tolist() == ["2", "0", "1"]
    assert ranked["rank"].tolist() == [1, 2, 3]


def test_compare_ranks_writes_csv_and_plots_of_swept_parameters(tmp_path: Path, monkeypatch):
    figures = _Figures(monkeypatch)
    root = _make_multirun(tmp_path / "multirun")
    sweep = load_sweep(root)
    (group,) = sweep.groups
    # The sweeper's space is what is plotted; trainer.epochs and +tag are the same everywhere.
    assert group.params == ["model", "optimizer.optimizer.lr"] and group.context == []
    assert group.log_params == {"optimizer.optimizer.lr"}

    written = compare(root)
    table = pd.read_csv(written["csv"], dtype={"job": str})
    assert table["job"].tolist() == ["1", "3", "0", "10", "2"]
    assert table["rank"].tolist() == [1, 2, 3, 4, 5]
    assert table["status"].tolist() == ["ok"] * 4 + ["failed"]
    assert table["metric"].iloc[0] == pytest.approx(0.70)
    assert table["optimizer.optimizer.lr"].iloc[0] == pytest.approx(1e-2)
    out = root / "comparison"
    for name in ("metric_per_trial", "metric_vs_model", "metric_vs_optimizer.optimizer.lr"):
        _open(out / f"{name}.png", name)
    assert sorted(p.name for p in out.glob("*.png")) == [
        "metric_per_trial.png",
        "metric_vs_model.png",
        "metric_vs_optimizer.optimizer.lr.png",
    ]
    assert figures.seen["metric_vs_optimizer.optimizer.lr.png"]["xscale"] == "log"  # sampled log-uniform
    assert figures.seen["metric_vs_model.png"]["xscale"] == "linear"
    # Running it again reads the same jobs (the comparison folder is not taken for a job).
    assert len(load_sweep(root).runs) == len(JOBS)


def test_chance_and_baseline_lines_from_metrics_json(tmp_path: Path, monkeypatch, capsys):
    figures = _Figures(monkeypatch)
    skip_drawing(monkeypatch)  # the figures are read, not their pictures
    # the keys of a real run's metrics.json (gaitgraph/evaluation/metrics_file.py): the baseline scored like the metric
    extra = {
        "chance": 0.25,
        "metric_protocol": "p",
        "metric_name": "val/rank1",
        "baseline_metric": 0.33,
        "baseline": {"val": {"p": {"mean_rank1": 0.33}}, "test": {"p": {"mean_rank1": 0.9}}},
    }
    compare(_make_multirun(tmp_path / "with", metrics=extra))
    seen = figures.seen["metric_per_trial.png"]
    assert {"chance 25.0", "pose baseline 33.0"} <= set(seen["lines"])
    assert seen["ylim"][0] <= 25.0 and seen["ylim"][1] >= 70.0  # spans chance .. best trial

    compare(_make_multirun(tmp_path / "without"))
    assert not any(
        label.startswith(("chance", "pose baseline")) for label in figures.seen["metric_per_trial.png"]["lines"]
    )
    assert figures.seen["metric_per_trial.png"]["ylim"][0] == 0.0  # no reference known: the axis starts at 0
    out = capsys.readouterr().out
    assert "chance line: skipped" in out and "baseline line: skipped" in out


def test_references_read_the_baseline_scored_like_the_metric():
    refs, notes = references(
        [
            {},
            {
                "baseline_metric": 0.2,
                "baseline": {"test": {"b": {"mean_rank1": 0.1}}},
                "chance": 0.5,
                "metric_name": "m",
            },
        ]
    )
    assert (refs.chance, refs.baseline, refs.metric_name, notes) == (0.5, 0.2, "m (%)", [])


def test_ad_hoc_runs_of_two_datasets_form_two_groups_and_plot_no_unswept_key(tmp_path: Path, capsys):
    root = tmp_path / "outputs"
    runs = {  # date/time folders of single runs: nothing was swept
        "2026-01-01/10-00-00": ("psymo10", "resgcn_n21_r8", "[0,1]", 0.5),
        "2026-01-01/11-00-00": ("psymo10", "resgcn_n39_r8", "[0,1,2]", 0.6),
        "2026-01-02/09-00-00": ("casia_b", "resgcn_n21_r8", "[1,2]", 0.9),
        "2026-01-02/10-00-00": ("casia_b", "resgcn_n39_r8", "[1,2,3]", 0.8),
    }
    for job, (dataset, model, split, metric) in runs.items():
        _write_job(
            root / job,
            [f"dataset={dataset}", f"model={model}", f"{SPLIT}={split}"],
            {"dataset": {"name": dataset}},
            {"metric": metric},
        )
    sweep = load_sweep(root)
    assert [(g.study, g.dataset) for g in sweep.groups] == [(None, "casia_b"), (None, "psymo10")]
    for group in sweep.groups:
        assert group.params == [] and group.context == [SPLIT, "model"]
        assert group.runs["rank"].tolist() == [1, 2]  # ranked within its dataset only
    written = compare(root)
    assert not any("metric_vs" in name for name in written)
    assert sorted(written) == ["csv", "runs-casia_b/metric_per_trial", "runs-psymo10/metric_per_trial"]
    table = pd.read_csv(written["csv"])
    assert table.groupby("dataset")["rank"].apply(list).to_dict() == {"casia_b": [1, 2], "psymo10": [1, 2]}
    assert table.loc[table["rank"] == 1, "metric"].tolist() == [0.9, 0.6]
    _open(root / "comparison" / "runs-psymo10" / "metric_per_trial.png", "metric_per_trial")
    assert "not plotted (overrides that differ but were not swept)" in capsys.readouterr().out


def test_an_override_named_like_a_column_gets_its_own_column(tmp_path: Path):
    root = tmp_path / "outputs"  # one run chose dataset=psymo10 on the command line, the other by default
    _write_job(root / "2026-01-01/10-00-00", ["dataset=psymo10"], {"dataset": {"name": "psymo10"}}, {"metric": 0.5})
    _write_job(root / "2026-01-01/11-00-00", [], {"dataset": {"name": "psymo10"}}, {"metric": 0.6})
    (group,) = load_sweep(root).groups
    assert group.context == ["dataset (override)"] and group.runs["dataset"].tolist() == ["psymo10", "psymo10"]
    assert group.runs["dataset (override)"].fillna("-").tolist() == ["-", "psymo10"]


def test_a_command_line_grid_is_swept(tmp_path: Path):
    root = tmp_path / "grid"
    for job, lr in (("0", 1e-3), ("1", 1e-2)):
        _write_job(root / job, [f"optimizer.optimizer.lr={lr}", f"{SPLIT}=[{job}]"], {}, {"metric": 0.5})
    (root / "multirun.yaml").write_text(
        yaml.safe_dump({"hydra": {"overrides": {"task": ["optimizer.optimizer.lr=0.001,0.01", f"{SPLIT}=[0]"]}}})
    )
    (group,) = load_sweep(root).groups
    assert group.params == ["optimizer.optimizer.lr"] and group.log_params == set()


def _study(tmp_path: Path) -> Path:
    db = tmp_path / "optuna" / "s.db"
    db.parent.mkdir()
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}", direction="maximize")
    space = {
        "optimizer.optimizer.lr": optuna.distributions.LogUniformDistribution(1e-5, 1e-1),
        "model": optuna.distributions.CategoricalDistribution(["resgcn_n21_r8", "resgcn_n39_r8"]),
    }
    for lr, model, metric in JOBS.values():
        study.add_trial(
            optuna.trial.create_trial(
                params={"optimizer.optimizer.lr": lr, "model": model},
                distributions=space,
                value=metric,
                state=optuna.trial.TrialState.COMPLETE if metric is not None else optuna.trial.TrialState.FAIL,
            )
        )
    return db


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_study_importances_with_trial_count_history_and_slice(tmp_path: Path, monkeypatch, capsys):
    figures = _Figures(monkeypatch)
    db = _study(tmp_path)
    config = {
        "hparams_search": {"study_name": "s", "storage": None, "sqlite_path": str(db)},
        "dataset": {"name": "psymo10"},
    }
    root = _make_multirun(tmp_path / "multirun", config)
    for job in JOBS:  # no sweeper params saved: the study's distributions say what was swept, and how
        (root / job / ".hydra" / "hydra.yaml").unlink()
    (group,) = load_sweep(root).groups
    assert group.study == "s" and group.log_params == {"optimizer.optimizer.lr"}
    written = compare(root)
    _open(written["param_importances"], "param_importances")
    _open(written["optuna_history"], "optuna_history")
    _open(written["optuna_slice"], "optuna_slice", n_params=2)
    assert figures.seen["param_importances.png"]["title"].startswith("study s\n4 completed trials")
    assert "over 4 completed trials" in capsys.readouterr().out
    assert figures.seen["metric_vs_optimizer.optimizer.lr.png"]["xscale"] == "log"


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_sweep_folders_study_record_wins_over_the_job_config(tmp_path: Path, monkeypatch):
    skip_drawing(monkeypatch)
    db = _study(tmp_path)
    # The job config's sqlite path is relative (as ${paths.*} may resolve elsewhere at compare time): wrong here.
    config = {"hparams_search": {"study_name": "s", "storage": None, "sqlite_path": "optuna/s.db"}}
    root = _make_multirun(tmp_path / "multirun", config)
    assert load_sweep(root).groups[0].storage == ("s", f"sqlite:///{(Path.cwd() / 'optuna' / 's.db').resolve()}")
    (root / STUDY_FILE).write_text(json.dumps({"other": "sqlite:///elsewhere.db", "s": f"sqlite:///{db}"}))
    (group,) = load_sweep(root).groups
    assert group.storage == ("s", f"sqlite:///{db}")
    assert "optuna_history" in compare(root)


def test_missing_study_storage_is_skipped_with_a_note(tmp_path: Path, capsys, monkeypatch):
    skip_drawing(monkeypatch)
    config = {"hparams_search": {"study_name": "s", "storage": None, "sqlite_path": str(tmp_path / "none.db")}}
    root = _make_multirun(tmp_path / "multirun", config)
    written = compare(root)
    assert "param_importances" not in written and "optuna_history" not in written
    assert "Optuna study: skipped" in capsys.readouterr().out


def test_correlation_importances_find_the_parameter_that_matters():
    frame = pd.DataFrame(
        {"lr": [1, 2, 3, 4, 5], "noise": [3, 1, 4, 1, 5], "model": list("ababa"), "value": [0.1, 0.2, 0.3, 0.4, 0.5]}
    )
    scores = correlation_importances(frame, ["lr", "noise", "model"])
    assert list(scores)[0] == "lr"
    assert sum(scores.values()) == pytest.approx(1.0)


def test_script_fails_clearly_on_a_folder_without_jobs(tmp_path: Path):
    # The command line, run in this process (conftest.run_script: the same exit status and stderr).
    result = run_script(ROOT / "scripts" / "compare_runs.py", [str(tmp_path)])
    assert result.returncode == 1
    assert "no job folders" in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_pruned_trials_are_shown_as_pruned_and_test_rank1_beside_the_validation_metric(
    tmp_path: Path, capsys, monkeypatch
):
    skip_drawing(monkeypatch)
    db = tmp_path / "s.db"
    study = optuna.create_study(study_name="s", storage=f"sqlite:///{db}", direction="maximize")
    space = {"optimizer.optimizer.lr": optuna.distributions.LogUniformDistribution(1e-5, 1e-1)}
    # trial -> (lr, state, val rank-1 or None, test rank-1): trial 1 was pruned at epoch 2, trial 3 failed
    trials = {0: (1e-3, "COMPLETE", 0.6, 0.5), 1: (1e-5, "PRUNED", None, None), 2: (1e-2, "COMPLETE", 0.8, 0.7)}
    trials[3] = (1e-4, "FAIL", None, None)
    config = {"hparams_search": {"study_name": "s", "storage": None, "sqlite_path": str(db)}, "dataset": {"name": "d"}}
    for number, (lr, state, val, test) in trials.items():
        study.add_trial(
            optuna.trial.create_trial(
                params={"optimizer.optimizer.lr": lr},
                distributions=space,
                value=val if state == "COMPLETE" else None,
                intermediate_values={2: 0.1} if state == "PRUNED" else {},
                state=optuna.trial.TrialState[state],
            )
        )
        metrics = None
        if val is not None:  # the keys a real run writes (gaitgraph/evaluation/metrics_file.py), fractions
            metrics = {
                "metric": val,
                "metric_protocol": "p",
                "test": {"p": {"mean_rank1": test}, "q": {"mean_rank1": 0}},
            }
        overrides = [
            f"optimizer.optimizer.lr={lr}",
            "hparams_search.study_name=s",
            f"hparams_search.trial_number={number}",
        ]
        _write_job(tmp_path / "sweep" / str(number), overrides, config, metrics, sweeper_params=SEARCH)
    written = compare(tmp_path / "sweep")
    table = pd.read_csv(written["csv"], dtype={"job": str})
    assert table["job"].tolist() == ["2", "0", "1", "3"]
    assert table["status"].tolist() == ["ok", "ok", "pruned", "failed"]
    assert table["test_rank1"].fillna(-1).tolist() == [0.7, 0.5, -1, -1]
    out = capsys.readouterr().out
    assert (
        "test rank-1" in out and "pruned (stopped early by the study's pruner on their validation curve): jobs 1" in out
    )
    row = next(line for line in out.splitlines() if " 2 " in line and "ok" in line)
    assert "80.0" in row and "70.0" in row, "val and test rank-1 side by side, in percent"
