"""Two sweep workers sharing one Optuna study in a throwaway PostgreSQL cluster (the multi-machine setup)."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import subprocess
import tempfile
from glob import glob
from pathlib import Path

import optuna
import pytest

from .conftest import run_app
from .forked import Forked
from .no_drawing import skip_drawing
from .test_sweep import TINY

STUDY = "shared"


def _server_binary(name: str) -> str | None:
    found = shutil.which(name) or sorted(glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found if isinstance(found, str) else (found[-1] if found else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """Start a trust-auth cluster on a free localhost port; yield its SQLAlchemy URL; stop it after."""
    initdb, pg_ctl = _server_binary("initdb"), _server_binary("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found: apt-get install postgresql")
    # initdb refuses to run as root: then the server runs as `postgres` in a folder that user owns
    # (outside pytest's tmp dirs, which only root may enter).
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="gaitgraph-pg-"))
    if as_root:
        shutil.chown(base, "postgres", "postgres")
    data, port = base / "data", _free_port()

    def run(*args: str) -> None:
        done = subprocess.run([*prefix, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"

    run(initdb, "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync")
    run(
        pg_ctl,
        "-D",
        str(data),
        "-o",
        f"-p {port} -k {base} -c listen_addresses=127.0.0.1",
        "-l",
        str(base / "server.log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(base, ignore_errors=True)


def _worker(name: str, n_trials: int, url: str, out: Path, cache: Path) -> list[str]:
    """The command line of one sweep worker: the small sweep, its jobs in ``out/<name>``, its trials in the shared
    study at ``url``."""
    return [
        "-m",
        "hparams_search=optuna_small",
        *TINY,
        "trainer.limit_batches=1",  # one step a trial: what is shared is the study, not the training
        "logger=none",
        f"paths.output_root={out}",
        f"paths.cache_dir={cache}",
        f"hydra.sweep.dir={out / name}",
        f"hparams_search.study_name={STUDY}",
        f"hparams_search.storage={url}",
        f"hydra.sweeper.n_trials={n_trials}",
    ]


@pytest.mark.slow
def test_two_workers_share_one_study(postgres_url: str, tmp_path: Path, shared_cache: Path, monkeypatch):
    """Worker a is a process of its own (another machine), forked from this one (tests/forked.py: the platform
    already imported); worker b runs in this process (run_app) meanwhile. Worker a runs two trials, so that its
    trials span worker b's one. No run's figures are drawn (:func:`skip_drawing`, inherited by the fork)."""
    logging.getLogger("alembic").setLevel(logging.WARNING)
    skip_drawing(monkeypatch)
    # Create the study once first: workers racing to create it is a known failure.
    optuna.create_study(study_name=STUDY, storage=postgres_url, direction="maximize", load_if_exists=True)
    logs = tmp_path / "logs"
    worker = Forked("gaitgraph.train", _worker("a", 2, postgres_url, tmp_path, shared_cache), logs, cwd=tmp_path)
    try:
        result = run_app("gaitgraph.train", _worker("b", 1, postgres_url, tmp_path, shared_cache), cwd=tmp_path)
    finally:
        done = worker.wait(timeout=400)
    assert done.returncode == 0, done.stderr[-4000:]
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]

    trials = optuna.load_study(study_name=STUDY, storage=postgres_url).trials
    numbers = [t.number for t in trials]
    assert len(trials) == 3 and sorted(numbers) == [0, 1, 2], numbers
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    metrics = [json.loads(Path(p).read_text())["metric"] for p in glob(f"{tmp_path}/[ab]/*/metrics.json")]
    assert len(metrics) == 3
    assert sorted(t.value for t in trials) == pytest.approx(sorted(m * 100 for m in metrics))  # study: %
    best = optuna.load_study(study_name=STUDY, storage=postgres_url).best_value
    assert best == pytest.approx(max(metrics) * 100) and 0.0 <= best <= 100.0
    # No sqlite file: the URL override replaced the default storage.
    assert not (tmp_path / "optuna").exists()
