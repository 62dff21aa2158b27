"""Trials of a sweep process that died (``kill -9``, the OOM killer) are failed when their study is next opened.

Nothing tells Optuna when a sweeper is killed: its trial stays RUNNING for good and counts as a trial. So the
sweeper records, in each trial it asks, its owner (host, pid and the process's start time, so that a recycled pid
is not taken for the owner) and beats Optuna's RDB heartbeat for it while it runs. When a sweep opens its study:

- a RUNNING trial whose owner was a process of this host that no longer runs is failed at once;
- a RUNNING trial of another host is failed when its heartbeat stopped more than ``hparams_search.grace_period``
  seconds ago (Optuna's stale-trial check; the heartbeat is beaten every ``hparams_search.heartbeat_interval`` s).

The failed trials are named in one log line, and the sweep goes on with its own budget.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from optuna.storages import RDBStorage
from optuna.trial import TrialState

log = logging.getLogger(__name__)

#: The trial system attribute that names the process that asked the trial: ``{"host", "pid", "start"}``.
OWNER = "gaitgraph:owner"


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, field 22 of ``/proc/<pid>/stat``); None when no such
    process runs (or the system has no ``/proc``)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count the fields after its ')'.
    return stat.rsplit(")", 1)[1].split()[19]


def owner() -> dict[str, Any]:
    """This process as a trial's owner."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": process_start(pid)}


def owner_dead(record: Any) -> bool:
    """Whether ``record`` (an :data:`OWNER` attribute) names a process of this host that no longer runs.

    False for another host (its heartbeat decides), for a record without a pid, and for a live process.
    """
    if not isinstance(record, dict) or record.get("host") != socket.gethostname():
        return False
    pid = record.get("pid")
    if not isinstance(pid, int):
        return False
    if not Path("/proc/self/stat").exists():  # no /proc: the pid alone, without the recycling check
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:  # another user's live process
            return False
        return False
    started = process_start(pid)
    return started is None or (record.get("start") is not None and started != record["start"])


def storage_with_heartbeat(url: str, interval: int | None, grace_period: int | None) -> RDBStorage:
    """The study's RDB storage, with Optuna's heartbeat when ``interval`` is set (seconds, both)."""
    return RDBStorage(url, heartbeat_interval=interval or None, grace_period=grace_period or None)


def fail_dead_trials(storage: RDBStorage, study_name: str) -> list[int]:
    """Mark FAIL the study's RUNNING trials whose sweep process is gone; their numbers (logged in one line)."""
    study_id = storage.get_study_id_from_name(study_name)
    running = {t._trial_id: t for t in storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))}
    failed = [t.number for i, t in running.items() if owner_dead(t.system_attrs.get(OWNER)) and _fail(storage, i)]
    stale = []
    if storage.is_heartbeat_enabled():
        stale = [running[i].number for i in storage.fail_stale_trials(study_id) if i in running]
    if failed or stale:
        grace = storage.grace_period or 2 * (storage.get_heartbeat_interval() or 0)
        reasons = [f"{n} (its sweep process no longer runs on this host)" for n in failed]
        reasons += [f"{n} (no heartbeat for over {grace} s)" for n in stale]
        log.warning("study %s: trial(s) %s marked FAIL; the sweep goes on", study_name, ", ".join(reasons))
    return sorted(failed + stale)


def _fail(storage: RDBStorage, trial_id: int) -> bool:
    try:
        return storage.set_trial_state(trial_id, TrialState.FAIL)
    except RuntimeError:  # finished meanwhile (another sweeper opening the study failed it first)
        return False


class Heartbeat:
    """Record the heartbeat of ``trial_ids`` now and every heartbeat interval from a daemon thread, while in the
    ``with`` block (nothing when the storage has no heartbeat)."""

    def __init__(self, storage: RDBStorage, trial_ids: Iterable[int]) -> None:
        self.storage = storage
        self.trial_ids = list(trial_ids)
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        interval = self.storage.get_heartbeat_interval()
        if interval:
            self._beat()
            self.thread = threading.Thread(target=self._run, args=(interval,), name="trial-heartbeat", daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()

    def _run(self, interval: int) -> None:
        while not self.stop.wait(interval):
            self._beat()

    def _beat(self) -> None:
        for trial_id in self.trial_ids:
            try:
                self.storage.record_heartbeat(trial_id)
            except Exception as err:  # noqa: BLE001 - a lost beat only risks a late FAIL; never stop the trial
                log.warning("heartbeat of trial id %d not recorded: %s", trial_id, err)
