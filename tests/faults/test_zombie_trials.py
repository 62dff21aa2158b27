"""Zombie trials: a sweep killed outright (kill -9, the OOM killer) leaves its trial RUNNING; the next start of the
same sweep marks it FAIL, names it, and still runs its own budget."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from gaitgraph.sweep.liveness import OWNER, Heartbeat, fail_dead_trials, owner, owner_dead, storage_with_heartbeat

from ..forked import Forked
from ..no_drawing import skip_drawing
from ..test_sweep import TINY, _log, _sweep

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_the_owner_of_a_trial_is_dead_only_when_its_process_on_this_host_is_gone():
    me = owner()
    assert me["host"] == socket.gethostname() and me["pid"] == os.getpid()
    assert not owner_dead(me)
    assert owner_dead({**me, "pid": _dead_pid()})
    # The pid of a live process that started at another time is a recycled pid: not the owner.
    assert owner_dead({**me, "start": "1"})
    assert not owner_dead({**me, "host": "another-host", "pid": _dead_pid()}), "another host: the heartbeat decides"
    assert not owner_dead(None) and not owner_dead({"host": me["host"]})


def test_open_fails_dead_local_trials_and_stale_remote_ones_and_names_them(tmp_path: Path, caplog):
    storage = storage_with_heartbeat(f"sqlite:///{tmp_path / 's.db'}", interval=1, grace_period=1)
    study = optuna.create_study(study_name="z", storage=storage, direction="maximize")
    trials = [study.ask() for _ in range(4)]
    trials[0].set_system_attr(OWNER, {**owner(), "pid": _dead_pid()})  # this host, process gone
    trials[1].set_system_attr(OWNER, owner())  # this host, alive (this test)
    for trial in trials[2:]:  # another host: judged by their heartbeat
        trial.set_system_attr(OWNER, {"host": "another-host", "pid": 1, "start": "1"})
    with Heartbeat(storage, [trials[2]._trial_id]):
        time.sleep(0.1)
    with Heartbeat(storage, [trials[3]._trial_id]):
        time.sleep(2.5)  # trial 2's last beat is now over the 1 s grace period; trial 3 beats on
        assert fail_dead_trials(storage, "z") == [0, 2]
    states = [t.state.name for t in optuna.load_study(study_name="z", storage=storage).trials]
    assert states == ["FAIL", "RUNNING", "FAIL", "RUNNING"]
    (line,) = [r.getMessage() for r in caplog.records if "marked FAIL" in r.getMessage()]
    assert "0 (its sweep process no longer runs on this host)" in line and "2 (no heartbeat for over 1 s)" in line


def _runs(pid: int) -> bool:
    """Whether child ``pid`` still runs, without collecting it if it ended (:meth:`Forked.wait` does)."""
    return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None


def _running_trial(db: Path) -> int | None:
    """The number of a RUNNING trial in the sweep's sqlite file, read without Optuna (no lock held)."""
    if not db.is_file():
        return None
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as con:
            row = con.execute("SELECT number FROM trials WHERE state = 'RUNNING'").fetchone()
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return None
    return None if row is None else row[0]


@pytest.mark.slow
def test_a_sweep_killed_mid_trial_leaves_a_failed_trial_and_the_rerun_completes_its_budget(
    tmp_path: Path, shared_cache: Path, monkeypatch
):
    # The session's pose cache: a build killed with its sweep leaves only a temp file, which the next build removes.
    out, cache = tmp_path / "outputs", shared_cache
    # A fixed learning rate: no trial may fail for its own reasons (a diverging draw), only the killed one. Three
    # one-step epochs: the killed trial still has seconds to run when its job has started.
    fixed = ["trainer.epochs=3", "trainer.limit_batches=1", "optimizer.optimizer.lr=0.001", "logger=none"]
    # A budget of one trial: the zombie the rerun marks FAIL does not take it, the rerun still completes one trial.
    args = ["hparams_search=optuna_small", *TINY, *fixed, "hydra.sweeper.n_trials=1"]
    args += [f"paths.output_root={out}", f"paths.cache_dir={cache}"]
    # The sweep is a process of its own, forked from this one (tests/forked.py: the platform already imported).
    sweep = Forked("gaitgraph.train", ["-m", *args], tmp_path / "logs", cwd=tmp_path)
    db = out / "optuna" / "studies.db"
    deadline = time.monotonic() + 240
    try:
        # Kill once trial 0 is RUNNING and its job has started (the run's config tree is written as it begins).
        while not (_running_trial(db) == 0 and list(out.glob("multirun/*/*/0/config_tree.txt"))):
            assert _runs(sweep.pid), f"the sweep ended before it could be killed:\n{sweep.err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "trial 0 never started"
            time.sleep(0.2)
    finally:
        os.kill(sweep.pid, signal.SIGKILL)  # until wait() collects it, the child's pid cannot be another process's
        killed = sweep.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    (summary,) = optuna.get_all_study_summaries(f"sqlite:///{db}")
    name = summary.study_name
    assert [t.state for t in optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials] == [
        optuna.trial.TrialState.RUNNING
    ], "kill -9 leaves the trial RUNNING: nothing could tell it"

    skip_drawing(monkeypatch)  # the rerun's pictures are not looked at
    result, _ = _sweep(out, cache, *fixed, "hydra.sweeper.n_trials=1")
    assert result.returncode == 0, _log(result)
    trials = optuna.load_study(study_name=name, storage=f"sqlite:///{db}").trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"], _log(result)
    line = f"study {name}: trial(s) 0 (its sweep process no longer runs on this host) marked FAIL; the sweep goes on"
    assert line in result.stdout + result.stderr
    assert trials[0].system_attrs[OWNER]["pid"] == sweep.pid
