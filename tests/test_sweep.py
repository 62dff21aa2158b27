"""Optuna sweeps as real ``python -m gaitgraph.train -m hparams_search=...`` command lines on PsyMo-10, run in
this process (tests/conftest.py ``run_app``: Hydra's multirun, the sweeper plugin and the launchers as on the
command line; submitit and DDP still start their own processes). The seed check's repeats, each a
``python -m gaitgraph.train`` process in the tool, run here too (:func:`_train_in_this_process`).

Tiny trials (1 epoch, 2 training and 2 test subjects, 8-frame windows) keep each trial to a few seconds; runs whose
pictures no test looks at build their figures without drawing them (tests/no_drawing.py).
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
import yaml
from rich.console import Console

import gaitgraph.sweep.seed_check as seed_check_module
from gaitgraph.engine.distributed import DistContext
from gaitgraph.errors import ConfigError
from gaitgraph.sweep.compare import load_sweep
from gaitgraph.sweep.pruning import Pruning, TrialPruned
from gaitgraph.sweep.seed_check import finished_trials, run_repeat, seed_check, verdict
from gaitgraph.sweep.study import STUDY_FILE, storage_url
from scripts.compare_runs import main as compare_runs

from .conftest import compose_train, run_app
from .no_drawing import skip_drawing
from .wandb_offline import read_offline_run

TINY = [
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "dataset.sequence_length=8",
    "dataset.split.train_subjects=[0,1]",
    "dataset.split.test_subjects=[6,7]",
    "baseline=false",
    "trainer.num_threads=1",
    "trainer.device=cpu",
]

logging.getLogger("alembic").setLevel(logging.WARNING)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def _sweep(out: Path, cache: Path, *extra: str, search: str = "optuna_small"):
    """Run one sweep with all outputs under ``out``; return (AppResult, its sweep dir or None).

    An ``extra`` override replaces the TINY one of the same key (a command-line value is fixed for the
    sweeper; ``key=choice(...)`` on the command line makes it part of the search space).
    """
    keys = {e.split("=", 1)[0] for e in extra}
    tiny = [t for t in TINY if t.split("=", 1)[0] not in keys]
    before = set(out.glob("multirun/*/*"))
    result = run_app(
        "gaitgraph.train",
        ["-m", f"hparams_search={search}", *tiny, f"paths.output_root={out}", f"paths.cache_dir={cache}", *extra],
    )
    new = sorted(set(out.glob("multirun/*/*")) - before)
    return result, (new[0] if len(new) == 1 else None)


def _log(result) -> str:
    return result.stdout[-3000:] + result.stderr[-4000:]


def _study(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'optuna' / 'studies.db'}")


def _study_name(sweep_dir: Path) -> str:
    """The study a sweep used, as the sweeper told its jobs."""
    config = yaml.safe_load((sweep_dir / "0" / ".hydra" / "config.yaml").read_text())
    return config["hparams_search"]["study_name"]


@pytest.fixture(scope="module")
def first_sweep(tmp_path_factory, shared_cache: Path):
    """A 2-trial sweep on sqlite with W&B offline: (outputs dir, cache dir, sweep dir). Two trials are what its
    readers need: a best and a worst one for the seed check, two completed trials to rank parameters (which two of
    three trials the seed check picks is tests/test_seed_check.py's). The sampler is seeded (a setting of the
    sweeper, not of the recipe: the study's name stays the command's): the two learning rates, 0.0023 and 0.0031,
    are the same every time (unseeded, two such one-epoch trials sometimes scored alike: no worst to tell apart)."""
    out, cache = tmp_path_factory.mktemp("sweep") / "outputs", shared_cache
    with pytest.MonkeyPatch.context() as patch:
        skip_drawing(patch)  # W&B logs the heatmap's file; which key it is logged under is read here
        result, sweep_dir = _sweep(
            out, cache, "logger=wandb", "hydra.sweeper.n_trials=2", "hydra.sweeper.sampler.seed=0"
        )
    assert result.returncode == 0, _log(result)
    assert sweep_dir is not None
    return out, cache, sweep_dir


@pytest.mark.slow
def test_sweep_records_every_trial_complete_with_its_attributes(first_sweep):
    out, _, sweep_dir = first_sweep
    name = _study_name(sweep_dir)
    assert name.startswith("sweep_small-psymo10-") and len(name.rsplit("-", 1)[1]) == 12
    study = _study(out, name)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    # Each job folder's metric is the validation objective the study recorded for that trial (there in percent).
    for trial in study.trials:
        job = sweep_dir / str(trial.number)
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["metric_name"] == "val/rank1" and metrics["metric"] * 100 == pytest.approx(trial.value)
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert f"optimizer.optimizer.lr={trial.params['optimizer.optimizer.lr']}" in overrides
        assert f"hparams_search.trial_number={trial.number}" in overrides
        assert trial.user_attrs["run_dir"] == str(job) and trial.user_attrs["overrides"] == overrides
        (run,) = (job / "wandb").glob("offline-run-*")
        assert run.name.endswith(trial.user_attrs["wandb_run_id"])
    results = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert results["best_value"] == pytest.approx(study.best_value)


@pytest.mark.slow
def test_trial_wandb_offline_run_holds_expected_keys(first_sweep):
    _, _, sweep_dir = first_sweep
    runs = sorted((sweep_dir / "1" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one W&B run per trial (finish() closes each)"
    run = read_offline_run(runs[0])
    assert run.group == _study_name(sweep_dir) and run.job_type == "sweep"
    assert {"hparams_search:optuna_small", "model:resgcn_n21_r8", "dataset:psymo10"} <= set(run.tags)
    overrides = yaml.safe_load((sweep_dir / "1" / ".hydra" / "overrides.yaml").read_text())
    lr = next(float(o.split("=", 1)[1]) for o in overrides if o.startswith("optimizer.optimizer.lr="))
    assert run.config["optimizer"]["optimizer"]["lr"] == pytest.approx(lr)
    keys = run.history_keys()
    assert {"train/loss", "train/lr", "train/samples_per_s", "epoch", "test/mean_rank1"} <= keys
    assert any(k.startswith("test/psymo10/table") for k in keys), "per-view wandb.Table"
    assert any(k.startswith("test/psymo10/heatmap") for k in keys), "heatmap image"
    assert any(kind == "model" for _, kind in run.artifacts), "checkpoint artifact"
    assert run.exit_code == 0


@pytest.mark.slow
def test_rerunning_the_command_adds_trials_to_the_same_study(first_sweep, monkeypatch):
    out, cache, sweep_dir = first_sweep
    skip_drawing(monkeypatch)
    # One more trial shows it: the study goes on at trial 2 (a second added trial would show nothing new).
    result, second_dir = _sweep(out, cache, "logger=none", "hydra.sweeper.n_trials=1")
    assert result.returncode == 0, _log(result)
    assert second_dir is not None and second_dir != sweep_dir
    assert _study_name(second_dir) == _study_name(sweep_dir), "the same command resumes the same study"
    study = _study(out, _study_name(sweep_dir))
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # Hydra numbers the jobs of the new sweep from 0 again, in its own folder: trial 2 is its job 0.
    overrides = yaml.safe_load((second_dir / "0" / ".hydra" / "overrides.yaml").read_text())
    assert "hparams_search.trial_number=2" in overrides
    assert (second_dir / "0" / "metrics.json").is_file() and not (second_dir / "1").exists()
    assert (sweep_dir / "0" / "metrics.json").is_file()


@pytest.mark.slow
def test_compare_runs_on_the_real_sweep(first_sweep, monkeypatch):
    _, _, sweep_dir = first_sweep
    skip_drawing(monkeypatch)  # which plots are written is read here; the pictures are test_compare_runs'
    sweep = load_sweep(sweep_dir)
    assert len(sweep.runs) == 2 and set(sweep.runs["status"]) == {"ok"}
    (group,) = sweep.groups
    assert group.study == _study_name(sweep_dir) and group.dataset == "psymo10"
    # The sweeper recorded where its study lives, resolved, beside the jobs.
    recorded = json.loads((sweep_dir / STUDY_FILE).read_text())
    assert recorded == {group.study: f"sqlite:///{(sweep_dir.parents[2] / 'optuna' / 'studies.db').resolve()}"}
    # optuna_small's space: lr sampled log-uniform, joint noise linear.
    assert set(group.params) == {"optimizer.optimizer.lr", "augmentation.transforms.joint_noise.amplitude"}
    assert group.log_params == {"optimizer.optimizer.lr"}
    assert group.context == [], "the sweeper's study name and trial number are bookkeeping, not context"
    assert compare_runs([str(sweep_dir)]) == 0  # scripts/compare_runs.py's main (its command line: test_compare_runs)
    out = sweep_dir / "comparison"
    assert (out / "runs.csv").is_file() and (out / "metric_per_trial.png").is_file()
    assert (out / "param_importances.png").is_file()
    assert (out / "optuna_history.png").is_file() and (out / "optuna_slice.png").is_file()


@pytest.mark.slow
def test_submitit_local_launcher_runs_a_job_in_a_process_of_its_own(tmp_path: Path, first_sweep):
    """One job: what the launcher adds (the task pickled to a process of its own, its result read back) is the same
    for every job of a multirun, and each job is a new interpreter's imports, about 8 CPU-s (was two jobs)."""
    _, cache, _ = first_sweep
    sweep_dir = tmp_path / "multirun"
    result = run_app(
        "gaitgraph.train",
        [
            "-m",
            "hydra/launcher=submitit_local",
            "trainer.seed=2",  # not the default seed: the job's override reached the job's config
            *TINY,
            "logger=none",
            f"paths.output_root={tmp_path}",
            f"paths.cache_dir={cache}",
            f"hydra.sweep.dir={sweep_dir}",
            "hydra.launcher.cpus_per_task=1",
            "hydra.launcher.timeout_min=10",
        ],
    )
    assert result.returncode == 0, _log(result)
    metrics = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert metrics["metric"] == pytest.approx(metrics["val"]["psymo10"]["mean_rank1"])
    assert yaml.safe_load((sweep_dir / "0" / ".hydra" / "config.yaml").read_text())["trainer"]["seed"] == 2
    assert not (sweep_dir / "1").exists()
    assert list((sweep_dir / ".submitit").glob("*/*_result.pkl")), "the job ran through submitit"


@pytest.mark.slow
def test_ddp_sweep_trains_each_trial_on_two_processes(tmp_path: Path, first_sweep):
    _, cache, _ = first_sweep
    out = tmp_path / "outputs"
    result = run_app(
        "gaitgraph.train",
        [
            "-m",
            "hparams_search=optuna_ddp",
            *TINY,
            "trainer.limit_batches=1",
            "model=resgcn_n21_r8",
            "logger=wandb",
            f"paths.output_root={out}",
            f"paths.cache_dir={cache}",
            "hydra.sweeper.n_trials=1",
        ],
    )
    assert result.returncode == 0, _log(result)
    (job,) = out.glob("multirun/*/*/0")
    study = _study(out, _study_name(job.parent))
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE]
    assert json.loads((job / "metrics.json").read_text())["metric"] * 100 == pytest.approx(study.best_value)
    runs = list((job / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "only rank 0 logs"
    assert read_offline_run(runs[0]).config["trainer"]["devices"] == 2


@pytest.mark.parametrize("option", ["optuna", "optuna_small", "optuna_pruned", "optuna_ddp", "optuna_slurm"])
def test_sweep_configs_compose(option):
    cfg = compose_train([f"hparams_search={option}"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper.direction == "maximize" and sweeper.max_failure_rate == 1.0
    assert sweeper.storage._target_ == "gaitgraph.sweep.study.storage_url"
    assert sweeper._target_ == "hydra_plugins.gaitgraph_sweeper.GaitGraphOptunaSweeper"
    assert sweeper.study_name is None and cfg.hparams_search.study_name is None  # named by the fingerprint
    if option == "optuna_ddp":
        assert cfg.trainer.devices == 2
    if option == "optuna_slurm":
        assert "SlurmLauncher" in cfg.hydra.launcher._target_ and sweeper.n_jobs == 4


@pytest.mark.slow
def test_another_budget_is_another_study_and_a_named_study_refuses_another_space(first_sweep):
    out, cache, sweep_dir = first_sweep
    named = _study_name(sweep_dir)
    # The sweeper names the study (and records it beside the jobs) before it asks for a trial: a sweep of no trial
    # shows which study the command's trials would join, and ends as one that completed none.
    result, other = _sweep(out, cache, "logger=none", "hydra.sweeper.n_trials=0", "trainer.epochs=2")
    assert result.returncode == 2 and "Traceback" not in _log(result), _log(result)
    assert "no trial has completed" in result.stderr
    (other_name,) = json.loads((other / STUDY_FILE).read_text())
    assert other_name.startswith("sweep_small-psymo10-")
    assert other_name != named, "another budget must not join the 1-epoch study"
    result, _ = _sweep(
        out,
        cache,
        "logger=none",
        "hydra.sweeper.n_trials=1",
        f"hparams_search.study_name={named}",
        "optimizer.optimizer.lr=tag(log, interval(1e-5, 1e-3))",
    )
    assert result.returncode == 2 and "Traceback" not in _log(result), _log(result)
    assert f"study error: study {named} already holds trials with optimizer.optimizer.lr" in result.stderr
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in _study(out, named).trials)


@pytest.mark.slow
def test_a_sweep_that_crashes_mid_trial_leaves_no_trial_running(tmp_path: Path, first_sweep):
    _, cache, _ = first_sweep
    out = tmp_path / "outputs"
    # A swept key that does not exist: composing the first job fails and the whole sweep stops.
    result, _ = _sweep(
        out,
        cache,
        "logger=none",
        "hparams_search.study_name=crash",
        "trainer.epochz=choice(1,2)",
        "hydra.sweeper.n_trials=2",
    )
    assert result.returncode != 0
    trials = _study(out, "crash").trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]


def _train_in_this_process(command: list[str], **_) -> subprocess.CompletedProcess:
    """``subprocess.run`` for the seed check: its ``python -m gaitgraph.train <overrides>`` repeat runs here
    (:func:`run_app`, the same command line without a new interpreter's seconds of imports)."""
    assert command[:3] == [sys.executable, "-m", "gaitgraph.train"], command
    result = run_app("gaitgraph.train", command[3:])
    return subprocess.CompletedProcess(command, result.returncode, result.stdout, result.stderr)


@pytest.mark.slow
def test_seed_check_reruns_the_best_and_the_worst_trial(tmp_path: Path, first_sweep, monkeypatch):
    _, _, sweep_dir = first_sweep
    monkeypatch.setattr(seed_check_module, "subprocess", SimpleNamespace(run=_train_in_this_process))
    skip_drawing(monkeypatch)
    copy = tmp_path / "sweep"  # the repeats write below the sweep folder: keep the shared one as it is
    for job in sweep_dir.glob("[0-9]*"):
        shutil.copytree(job, copy / job.name, ignore=shutil.ignore_patterns("checkpoints", "wandb"))
        overrides = copy / job.name / ".hydra" / "overrides.yaml"  # the tracker does not change the numbers
        overrides.write_text(overrides.read_text().replace("logger=wandb", "logger=none"))
    trials = finished_trials(copy)
    best, worst = max(trials, key=lambda t: t.metric), min(trials, key=lambda t: t.metric)
    # The same setting and seed as a trial, rerun as a single run, gives the trial's value: a repeat is that setting.
    assert run_repeat(best, best.seed, tmp_path / "same") == pytest.approx(best.metric, abs=1e-9)
    summary = seed_check(copy, [1], console=Console(file=io.StringIO()))
    assert (summary["best"]["job"], summary["worst"]["job"]) == (best.job, worst.job)
    for label, trial in (("best", best), ("worst", worst)):
        assert summary[label]["by_seed"][trial.seed] == trial.metric
        repeat = copy / "seed_check" / f"{label}-seed1"
        config = yaml.safe_load((repeat / ".hydra" / "config.yaml").read_text())
        assert config["trainer"]["seed"] == 1
        assert summary[label]["by_seed"][1] == json.loads((repeat / "metrics.json").read_text())["metric"]
    by_seed = [list(summary[k]["by_seed"].values()) for k in ("best", "worst")]
    assert summary["verdict"] == verdict(*by_seed)
    assert json.loads((copy / "seed_check" / "summary.json").read_text())["verdict"] == summary["verdict"]


def test_commands_that_do_not_sweep_do_not_import_optuna():
    # Hydra imports every plugin module at every start; the sweeper's must not pull optuna in (about 2 s a command).
    code = "import sys, hydra_plugins.gaitgraph_sweeper; print('optuna' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "False", done.stderr


def _reference_study(url: str, name: str) -> optuna.Study:
    """A study whose one completed trial reached an impossible val rank-1 at epoch 1 and reported nothing later:
    a median pruner stops every trial that validates at epoch 1, and none that validates only later."""
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.add_trial(optuna.trial.create_trial(value=1000.0, intermediate_values={1: 1000.0}))
    return study


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_pruning_reports_validation_in_percent_and_stops_a_hopeless_trial(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = _reference_study(url, "p")
    pruner = optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
    trainer = type("FakeTrainer", (), {"ctx": DistContext()})()
    hopeless, later = study.ask().number, study.ask().number
    callback = Pruning(pruner, "p", hopeless, url, None)
    callback.on_fit_start(trainer)
    callback.on_train_epoch_end(trainer, {"epoch": 1, "train/loss_epoch": 2.0})  # no validation this epoch
    with pytest.raises(TrialPruned, match=f"trial {hopeless} of study p stopped after epoch 1: val/rank1 60.0 %"):
        callback.on_train_epoch_end(trainer, {"epoch": 1, "val/rank1": 0.6, "test/mean_rank1": 0.9})
    assert isinstance(TrialPruned("x"), optuna.TrialPruned), "the sweeper records optuna's pruned signal as PRUNED"
    # A curve at an epoch no completed trial reached cannot be judged: the trial goes on.
    other = Pruning(pruner, "p", later, url, None)
    other.on_fit_start(trainer)
    other.on_train_epoch_end(trainer, {"epoch": 2, "val/rank1": 0.1})
    trials = optuna.load_study(study_name="p", storage=url).trials
    assert trials[hopeless].intermediate_values == {1: 60.0} and trials[later].intermediate_values == {2: 10.0}
    # Outside a sweep (no trial number) or without a pruner nothing is opened or reported.
    for idle in (Pruning(pruner, "p", None, url, None), Pruning(None, "p", later, url, None)):
        idle.on_fit_start(trainer)
        idle.on_train_epoch_end(trainer, {"epoch": 1, "val/rank1": 0.0})
        assert idle.trial is None
    with pytest.raises(ConfigError, match="the test split never prunes"):
        Pruning(pruner, "p", hopeless, url, None, monitor="test/mean_rank1")


def test_optuna_pruned_composes_a_median_pruner_and_the_pruning_callback():
    cfg = compose_train(["hparams_search=optuna_pruned"])
    assert cfg.hparams_search.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.callbacks.pruning.monitor == "val/rank1" and cfg.callbacks.pruning.pruner == cfg.hparams_search.pruner
    assert compose_train(["hparams_search=optuna_small"]).hparams_search.pruner is None


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.slow
def test_a_pruned_and_a_failing_trial_are_recorded_and_the_sweep_goes_on(tmp_path: Path, first_sweep, monkeypatch):
    """One sweep for two stories that each need a trial after them: a pruned sweep stops the hopeless trial, records
    it PRUNED and goes on; a failing trial is recorded FAIL and the sweep goes on (were two tests, two sweeps)."""
    _, cache, _ = first_sweep
    skip_drawing(monkeypatch)
    out = tmp_path / "outputs"
    study = _reference_study(storage_url(None, str(out / "optuna" / "studies.db")), "pruned")
    # validates at epoch 1: below the reference, pruned there
    study.enqueue_trial({"trainer.val_every": 1, "trainer.batch_size": 64})
    # batch size 0: refused by the config check
    study.enqueue_trial({"trainer.val_every": 2, "trainer.batch_size": 0})
    # validates at epoch 2 only: nothing to compare, runs to the end
    study.enqueue_trial({"trainer.val_every": 2, "trainer.batch_size": 64})
    result, sweep_dir = _sweep(
        out,
        cache,
        "logger=none",
        "hparams_search.study_name=pruned",
        "hydra.sweeper.n_trials=3",
        "trainer.epochs=2",
        "trainer.limit_batches=1",  # the curves need epochs, not steps
        "trainer.val_every=choice(1, 2)",
        "trainer.batch_size=choice(0, 64)",
        "optimizer.optimizer.lr=0.001",  # no trial may fail for its own reasons (a diverging draw)
        "hparams_search.pruner.n_startup_trials=1",
        "hparams_search.pruner.n_warmup_steps=0",
        search="optuna_pruned",
    )
    assert result.returncode == 0, _log(result)
    trials = _study(out, "pruned").trials
    assert [t.params.get("trainer.batch_size") for t in trials] == [None, 64, 0, 64]
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    pruned, finished = trials[1], trials[3]
    assert list(pruned.intermediate_values) == [1] and pruned.value == pytest.approx(pruned.intermediate_values[1])
    assert list(finished.intermediate_values) == [2]
    assert finished.value == pytest.approx(finished.intermediate_values[2]), "the curve and the objective share a unit"
    assert "trial pruned: trial 1 of study pruned stopped after epoch 1" in (sweep_dir / "0" / "train.log").read_text()
    assert not (sweep_dir / "0" / "metrics.json").exists(), "a pruned trial is never tested"
    assert "trial 2 failed: trainer.batch_size=0: expected an integer >= 1" in result.stdout + result.stderr
    assert not (sweep_dir / "1" / "metrics.json").exists()
    assert (sweep_dir / "2" / "metrics.json").is_file()
    runs = load_sweep(sweep_dir).runs
    assert dict(zip(runs["job"], runs["status"])) == {"2": "ok", "0": "pruned", "1": "failed"}
