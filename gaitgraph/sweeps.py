"""Optuna study storage for ``hparams_search=optuna*`` sweeps (the sweeper instantiates :func:`storage_url`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf


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


def study_location(job_config: DictConfig) -> tuple[str, str] | None:
    """``(study_name, storage URL)`` of the sweep a job's config belongs to, or None when it has none.

    Reads the ``hparams_search`` node that conf/hparams_search/optuna*.yaml put into the job config
    (``.hydra/config.yaml``), without creating anything.
    """
    search = job_config.get("hparams_search")
    if not isinstance(search, DictConfig) or "study_name" not in search:
        return None
    name = OmegaConf.select(job_config, "hparams_search.study_name", throw_on_resolution_failure=False)
    url = OmegaConf.select(job_config, "hparams_search.storage", throw_on_resolution_failure=False)
    sqlite_path = OmegaConf.select(job_config, "hparams_search.sqlite_path", throw_on_resolution_failure=False)
    if not name or not (url or sqlite_path):
        return None
    return str(name), str(url) if url else f"sqlite:///{Path(sqlite_path).expanduser().resolve()}"
