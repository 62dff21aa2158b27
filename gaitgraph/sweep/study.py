"""Where a sweep's Optuna study lives, read without importing Optuna: the names the sweeper gives its jobs, the
sweep folder's record of its studies and the storage URL (scripts/compare_runs.py, seed_check.py and the dashboard
read these; the sweeper in :mod:`gaitgraph.sweep.sweeper` writes them)."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

#: The overrides :meth:`OptunaSweeper._run_trials` adds to every job (its study and trial): bookkeeping, not a setting.
JOB_KEYS = ("hparams_search.study_name", "hparams_search.trial_number")
#: In a sweep folder: ``{study name: storage URL}`` of the studies its jobs report to, written at sweep start.
STUDY_FILE = "studies.json"


def storage_url(url: str | None, sqlite_path: str) -> str:
    """The study's RDB URL: ``url`` when given (e.g. PostgreSQL shared by workers), else a sqlite file.

    The sqlite file's folder is created here because sqlite cannot create it and the sweeper opens the
    study before Hydra creates any output folder. The path is made absolute so every worker, whatever its
    working directory, opens the same file.
    """
    if url:
        return str(url)
    path = Path(sqlite_path).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path}"


def study_location(job_config: DictConfig, sweep_dir: Path | None = None) -> tuple[str, str] | None:
    """``(study_name, storage URL)`` of the sweep a job's config belongs to, or None when it has none.

    The sweeper records both, resolved, in the sweep folder's :data:`STUDY_FILE`; that record wins, because the
    job config holds the storage unresolved (a sqlite path below ``paths.*``, which may resolve elsewhere when
    compared later, from another folder or machine). Without it, the ``hparams_search`` node of the job's
    ``.hydra/config.yaml`` is read. Nothing is created.
    """
    search = job_config.get("hparams_search")
    if not isinstance(search, DictConfig) or "study_name" not in search:
        return None
    name = OmegaConf.select(job_config, "hparams_search.study_name", throw_on_resolution_failure=False)
    record = sweep_dir / STUDY_FILE if sweep_dir is not None else None
    if name and record is not None and record.is_file():
        studies = json.loads(record.read_text())
        if name in studies:
            return str(name), str(studies[name])
    url = OmegaConf.select(job_config, "hparams_search.storage", throw_on_resolution_failure=False)
    sqlite_path = OmegaConf.select(job_config, "hparams_search.sqlite_path", throw_on_resolution_failure=False)
    if not name or not (url or sqlite_path):
        return None
    return str(name), str(url) if url else f"sqlite:///{Path(sqlite_path).expanduser().resolve()}"
