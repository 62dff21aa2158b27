"""The sweep dashboard (scripts/dashboard.py): the storage it serves, its errors, and the page in a real browser."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from gaitgraph.engine.distributed import free_port
from gaitgraph.sweep.dashboard import main, storage_of
from gaitgraph.sweep.study import STUDY_FILE

from .forked import Forked

STUDY = "sweep_small-psymo10-0123456789ab"
BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


def test_the_storage_comes_from_the_sweep_folders_record_and_a_folder_without_one_is_refused(tmp_path: Path, capsys):
    (tmp_path / STUDY_FILE).write_text(json.dumps({STUDY: "sqlite:////x/studies.db"}))
    assert storage_of(str(tmp_path)) == "sqlite:////x/studies.db"
    assert storage_of("postgresql+psycopg2://u@h:5432/optuna") == "postgresql+psycopg2://u@h:5432/optuna"
    with pytest.raises(SystemExit) as done:
        main([str(tmp_path / "elsewhere")])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"{tmp_path / 'elsewhere' / STUDY_FILE} not found: give the folder of a sweep" in err
    assert "Traceback" not in err


def _study(db: Path) -> None:
    """A study as a pruned sweep leaves it: two completed trials, one pruned, one failed."""
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{db}", direction="maximize")
    for value, state in ((61.9, "COMPLETE"), (None, "PRUNED"), (93.1, "COMPLETE"), (None, "FAIL")):
        trial = study.ask()
        trial.suggest_float("optimizer.optimizer.lr", 1e-4, 3e-2, log=True)
        trial.report(55.0, 2)
        study.tell(trial, value, state=optuna.trial.TrialState[state])


def _page(url: str, *extra: str) -> str:
    """The DOM of ``url`` after its scripts ran (headless Chromium; virtual time lets the app fetch and render)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=30000"]
    done = subprocess.run([BROWSER, *flags, *extra, url], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="Chromium not installed (apt-get install chromium; .ci/run does)")
def test_the_dashboard_shows_the_sweeps_study_and_its_trials_in_a_real_browser(tmp_path: Path):
    db, sweep = tmp_path / "studies.db", tmp_path / "sweep"
    _study(db)
    sweep.mkdir()
    (sweep / STUDY_FILE).write_text(json.dumps({STUDY: f"sqlite:///{db}"}))
    port = free_port()
    # The script's command line in a process of its own, forked from this one (tests/forked.py: optuna already
    # imported); the browser is a process of its own too.
    env = {"no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}
    server = Forked("scripts.dashboard", [str(sweep), "--port", str(port)], tmp_path / "logs", env=env, merged=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            try:
                studies = json.load(opener.open(f"{base}/api/studies", timeout=5))
                break
            except OSError:
                ended = server.poll()
                assert ended is None, f"the dashboard exited ({ended.returncode}):\n{ended.stdout[-3000:]}"
                assert time.monotonic() < deadline, f"the dashboard never answered:\n{server.out.read_text()[-3000:]}"
                time.sleep(0.5)
        assert [s["study_name"] for s in studies["study_summaries"]] == [STUDY]
        assert STUDY in _page(f"{base}/dashboard/", "--dump-dom")
        trials = _page(f"{base}/dashboard/studies/1/trials", "--dump-dom")
        assert all(f">Trial {number}<" in trials for number in range(4)), "every trial is listed"
        assert "Trial 0 (trial_id=1)" in trials, "the first one is opened"
        assert {state: trials.count(f">{state}<") >= 1 for state in ("Complete", "Pruned", "Fail")} == dict.fromkeys(
            ("Complete", "Pruned", "Fail"), True
        ), "each trial's state is drawn"
        shot = tmp_path / "study.png"
        _page(f"{base}/dashboard/studies/1", "--window-size=1400,900", f"--screenshot={shot}")
        assert shot.stat().st_size > 20_000, "a drawn page, not a blank one"
    finally:
        if server.poll() is None:  # until it is collected, the child's pid cannot be another process's
            os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
