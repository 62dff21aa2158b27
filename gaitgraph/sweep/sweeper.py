"""Optuna sweeps (``hparams_search=optuna*``): where studies live, what they are called, and the sweep loop.

:class:`OptunaSweeper` is hydra-optuna-sweeper's sweeper with the guarantees a sweep platform needs:

- **Studies are what they say.** Without ``hparams_search.study_name`` the study is named
  ``<task>-<dataset>-<fingerprint>``, the fingerprint covering the recipe of the base config (everything but
  operational keys: paths, loggers, ...) and the search space. Re-running the same command adds trials to the
  same study; another budget or search space gets a new study. An explicitly named study whose trials used
  another search space is refused with a clear error, never a crash.
- **Trials are traceable.** Every trial records its run directory, its overrides and its W&B run id as user
  attributes; each job is told its study and trial number (``hparams_search.study_name`` / ``trial_number``),
  so trackers name runs after them.
- **Nothing is left RUNNING.** A trial asked by this sweep and not told (an interrupted or crashed sweep) is
  marked FAIL before the sweep ends; a trial of a sweep process that was killed outright (``kill -9``, the OOM
  killer) is marked FAIL when the study is next opened (:mod:`gaitgraph.sweep.liveness`).
- **Hopeless trials can stop early.** With ``hparams_search.pruner`` set, each job reports its validation curve
  to its trial and stops when the pruner says so (:mod:`gaitgraph.sweep.pruning`); the trial is recorded as PRUNED.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.utils import JobReturn, JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_optuna_sweeper._impl import OptunaSweeperImpl, create_params_from_overrides
from omegaconf import DictConfig, OmegaConf
from optuna.storages import RDBStorage
from optuna.trial import TrialState

from gaitgraph.cli import exit_on_error
from gaitgraph.engine.checkpoint import OPERATIONAL_KEYS, recipe_differences
from gaitgraph.errors import Interrupted, StudyError
from gaitgraph.sweep.liveness import OWNER, Heartbeat, fail_dead_trials, owner, storage_with_heartbeat
from gaitgraph.sweep.study import JOB_KEYS, STUDY_FILE
from gaitgraph.utils import write_json

log = logging.getLogger(__name__)


def study_name(config: DictConfig, space: dict[str, Any]) -> str:
    """``<task>-<dataset>-<12 hex>``: the fingerprint of the base recipe and of the search space."""
    # Unresolved: the same command gives the same name on every machine, wherever its data and outputs live.
    keys = [k for k in config if k != "hydra" and k not in OPERATIONAL_KEYS]
    task = OmegaConf.to_container(OmegaConf.masked_copy(config, keys), resolve=False)
    recipe = {key: value for key, _, value in recipe_differences({}, task)}
    blob = json.dumps(
        {"recipe": recipe, "space": {k: repr(v) for k, v in sorted(space.items())}}, sort_keys=True, default=str
    )
    digest = hashlib.sha256(blob.encode()).hexdigest()[:12]
    return f"{config.task_name}-{config.dataset.name}-{digest}"


class OptunaSweeper(Sweeper):
    """hydra-optuna-sweeper's search with named-by-recipe studies, trial attributes and no orphaned trials.

    Takes the same settings as the plugin's sweeper (``hydra/sweeper: optuna``); its suggestion and job
    configuration are reused, the loop around them is this class's.
    """

    def __init__(self, **settings: Any) -> None:
        self.impl = OptunaSweeperImpl(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.impl.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    @exit_on_error
    def sweep(self, arguments: list[str]) -> None:
        impl = self.impl
        params = [f"{k!s}={v}" for k, v in (impl.params or {}).items()] + list(arguments)
        space, fixed = create_params_from_overrides(params)
        for name in fixed:
            space.pop(name, None)
        name = impl.study_name or study_name(impl.config, space)
        self.rdb = storage_with_heartbeat(
            impl.storage,
            OmegaConf.select(impl.config, "hparams_search.heartbeat_interval", default=None),
            OmegaConf.select(impl.config, "hparams_search.grace_period", default=None),
        )
        study = optuna.create_study(
            study_name=name,
            storage=self.rdb,
            sampler=impl.sampler,
            directions=impl._get_directions(),
            load_if_exists=True,
        )
        fail_dead_trials(self.rdb, name)
        check_search_space(study, space)
        log.info("study %s (%d earlier trials) in %s", name, len(study.trials), impl.storage)
        write_json({name: impl.storage}, Path(impl.config.hydra.sweep.dir) / STUDY_FILE)
        asked: list[optuna.trial.Trial] = []
        try:
            self._run_trials(study, space, fixed, asked)
        finally:
            fail_unfinished(study, asked)
        self._save_best(study)

    def _run_trials(self, study: optuna.Study, space: dict, fixed: dict, asked: list) -> None:
        impl = self.impl
        remaining = impl.n_trials
        while remaining > 0:
            trials = [study.ask() for _ in range(min(remaining, impl.n_jobs))]
            asked.extend(trials)
            for trial in trials:
                trial.set_system_attr(OWNER, owner())
            overrides = [
                (*job, f"{JOB_KEYS[0]}={study.study_name}", f"{JOB_KEYS[1]}={t.number}")
                for t, job in zip(trials, impl._configure_trials(trials, space, fixed))
            ]
            with Heartbeat(self.rdb, [t._trial_id for t in trials]):
                returns = impl.launcher.launch(overrides, initial_job_idx=impl.job_idx)
            impl.job_idx += len(returns)
            failures = [err for t, ret in zip(trials, returns) if (err := tell(study, t, ret, self.rdb)) is not None]
            stop = [err for err in failures if isinstance(err, Interrupted)]
            if stop:  # SIGTERM or Ctrl-C: the trial is FAIL (told above) and the sweep ends here
                raise stop[0]
            if len(failures) / len(returns) > impl.max_failure_rate:
                raise failures[0]
            remaining -= len(trials)

    def _save_best(self, study: optuna.Study) -> None:
        if not any(t.state == TrialState.COMPLETE for t in study.trials):
            raise StudyError(f"study {study.study_name}: no trial has completed; see the failed trials' logs")
        best = study.best_trial
        log.info("best trial %d: %s = %s", best.number, best.params, best.value)
        result = OmegaConf.create(
            {
                "name": "optuna",
                "study": study.study_name,
                "best_params": best.params,
                "best_value": best.value,
                "best_trial": best.number,
            }
        )
        OmegaConf.save(result, Path(self.impl.config.hydra.sweep.dir) / "optimization_results.yaml")


def check_search_space(study: optuna.Study, space: dict[str, Any]) -> None:
    """Refuse a search space that the study's earlier trials did not use (another range or choice list)."""
    for trial in study.trials:
        for name, distribution in space.items():
            earlier = trial.distributions.get(name)
            if earlier is not None and earlier != distribution:
                raise StudyError(
                    f"study {study.study_name} already holds trials with {name} ~ {earlier}, and this sweep asks "
                    f"{distribution}. Give hparams_search.study_name another name, or leave it null: the default "
                    "name follows the recipe and the search space."
                )


def tell(study: optuna.Study, trial: optuna.trial.Trial, ret: JobReturn, rdb: RDBStorage) -> Exception | None:
    """Record a finished job as the trial's outcome and attributes; returns the error of a failed one.

    A job the pruner stopped (it raised :class:`optuna.TrialPruned`) is a PRUNED trial, not a failure; an
    interrupted one (:class:`~gaitgraph.errors.Interrupted`: SIGTERM, Ctrl-C) is FAIL, and the sweep stops on it.
    """
    if not sync_reports(trial, rdb):
        return None
    run_dir = Path(ret.hydra_cfg.hydra.runtime.output_dir) if ret.hydra_cfg is not None else None
    trial.set_user_attr("run_dir", str(run_dir) if run_dir else None)
    trial.set_user_attr("overrides", list(ret.overrides or []))
    trial.set_user_attr("wandb_run_id", wandb_run_id(run_dir) if run_dir else None)
    if ret.status == JobStatus.FAILED and isinstance(ret._return_value, optuna.TrialPruned):
        study.tell(trial, state=TrialState.PRUNED)
        log.info("trial %d pruned: %s", trial.number, ret._return_value)
        return None
    if ret.status == JobStatus.FAILED and isinstance(ret._return_value, Interrupted):
        study.tell(trial, state=TrialState.FAIL)  # the sweep stops and prints it once (reading it prints it too)
        return ret._return_value
    try:
        value = ret.return_value
        if value is None:
            raise StudyError("the trial returned no objective (does the dataset have a validation split?)")
        study.tell(trial, float(value))
        return None
    except Exception as err:  # noqa: BLE001 - any failed job is a FAIL trial; the policy decides what follows
        study.tell(trial, state=TrialState.FAIL)
        log.warning("trial %d failed: %s", trial.number, str(err).splitlines()[0] if str(err) else type(err).__name__)
        return err


def sync_reports(trial: optuna.trial.Trial, rdb: RDBStorage) -> bool:
    """Copy the validation curve the job reported (through its own connection) into this sweeper's view of the
    trial, which Optuna caches, so the trial's PRUNED value and the sampler see it. False when the trial was
    finished meanwhile (another sweeper failed it for a late heartbeat): its result cannot be recorded any more."""
    stored = rdb.get_trial(trial._trial_id)
    if stored.state.is_finished():
        log.warning("trial %d was marked %s meanwhile; its result is not recorded", trial.number, stored.state.name)
        return False
    if len(trial.study.directions) == 1:  # Optuna keeps curves of single-objective trials only
        for step, value in sorted(stored.intermediate_values.items()):
            trial.report(value, step)
    return True


def fail_unfinished(study: optuna.Study, asked: Sequence[optuna.trial.Trial]) -> None:
    """Mark FAIL every trial this sweep asked and did not tell (the sweep was interrupted or crashed)."""
    states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
    for trial in asked:
        if states.get(trial.number) == TrialState.RUNNING:
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d was still running when the sweep stopped: marked FAIL", trial.number)


def wandb_run_id(run_dir: Path) -> str | None:
    """The id of the W&B run a job wrote (``wandb/<offline->run-<time>-<id>``), if any."""
    runs = sorted((run_dir / "wandb").glob("*run-*-*"))
    return runs[-1].name.rsplit("-", 1)[-1] if runs else None
