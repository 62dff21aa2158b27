"""One run per folder (docs/trust.md#one-run-per-folder): two runs started together into one folder, the claim
itself (live, stale, reused pid, foreign host, torchrun ranks), and the temporary files killed writes leave."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.data.cache import ensure
from gaitgraph.engine import claim
from gaitgraph.engine.callbacks import Callback
from gaitgraph.engine.guard import TrainGuard
from gaitgraph.errors import RunDirInUseError
from gaitgraph.utils import TEMP_NAME, atomic_write, host_tag, process_start
from tests.conftest import compose_train
from tests.forked import Forked
from tests.no_drawing import skip_drawing

HOST = socket.gethostname()


class Pause(Callback):
    """Wait ``seconds`` before the first step: the run holds its folder long enough for a second one to arrive."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def on_fit_start(self, trainer: Any) -> None:
        time.sleep(self.seconds)


@pytest.fixture
def other_process():
    """A live process of this host that is not this one (its pid and start time)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid, process_start(proc.pid)
    proc.kill()
    proc.wait()


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def plant_claim(folder: Path, **holder: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / claim.CLAIM
    path.write_text(json.dumps({"host": HOST, "claimed": "2026-01-01T00:00:00+00:00", **holder}))
    return path


def test_a_claim_is_exclusive_counted_and_released(tmp_path: Path) -> None:
    assert claim.acquire(tmp_path / "run")
    held = json.loads((tmp_path / "run" / claim.CLAIM).read_text())
    assert (held["host"], held["pid"], held["process_start"]) == (HOST, os.getpid(), process_start(os.getpid()))
    with claim.holding(tmp_path / "run"):  # train() inside the Hydra callback: the same process holds it twice
        pass
    assert (tmp_path / "run" / claim.CLAIM).exists(), "the outer holder still holds it"
    claim.release(tmp_path / "run")
    assert not (tmp_path / "run" / claim.CLAIM).exists()


def test_a_live_claim_refuses_naming_its_process_and_stays(tmp_path: Path, other_process) -> None:
    pid, start = other_process
    path = plant_claim(tmp_path, pid=pid, process_start=start)
    before = path.read_bytes()
    with pytest.raises(RunDirInUseError, match=rf"in use by process {pid} on host {HOST}") as err:
        claim.acquire(tmp_path)
    assert "\n" not in str(err.value) and "hydra.run.dir" in str(err.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize("why", ["dead", "reused pid", "old and empty", "old and not a claim"])
def test_a_stale_claim_is_named_and_taken_over(tmp_path: Path, other_process, caplog, why: str) -> None:
    if why == "dead":
        pid = dead_pid()
        path = plant_claim(tmp_path, pid=pid, process_start=12345)
    elif why == "reused pid":  # a live process now has the id, but it started at another time than the claimer
        pid = other_process[0]
        path = plant_claim(tmp_path, pid=pid, process_start=other_process[1] - 1)
    else:
        path = tmp_path / claim.CLAIM
        path.write_text("" if why == "old and empty" else '{"host": ["x"], "pid": "1; rm -rf /"}')
        os.utime(path, (time.time() - 60, time.time() - 60))
    with caplog.at_level("WARNING"):
        assert claim.acquire(tmp_path)
    try:
        assert json.loads(path.read_text())["pid"] == os.getpid()
        assert "taking" in caplog.text and (why.startswith("old") or f"process {pid} on host {HOST}" in caplog.text)
    finally:
        claim.release(tmp_path)


def test_a_fresh_empty_claim_is_a_run_claiming_right_now(tmp_path: Path) -> None:
    (tmp_path / claim.CLAIM).touch()
    with pytest.raises(RunDirInUseError, match="claiming it at this moment"):
        claim.acquire(tmp_path)


def test_a_claim_of_another_host_is_left_alone_and_named(tmp_path: Path) -> None:
    path = plant_claim(tmp_path, host="gpu-node-17", pid=dead_pid(), process_start=1)
    before = path.read_bytes()
    with pytest.raises(RunDirInUseError, match=r"process \d+ on host gpu-node-17.*delete .*\.gaitgraph-claim\.json"):
        claim.acquire(tmp_path)
    assert path.read_bytes() == before


def test_torchrun_ranks_other_than_0_do_not_claim(tmp_path: Path, monkeypatch, other_process) -> None:
    plant_claim(tmp_path, pid=other_process[0], process_start=other_process[1])  # rank 0 holds it
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    assert claim.acquire(tmp_path) is False
    (tmp_path / "metrics.json").write_text("{}")  # rank 0's run: another rank neither checks nor overwrites it
    cfg = compose_train(["trainer.overwrite=true", f"hydra.run.dir={tmp_path}"], return_hydra_config=True)
    TrainGuard().on_run_start(cfg)
    assert (tmp_path / "metrics.json").read_text() == "{}"
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    with pytest.raises(RunDirInUseError):
        claim.acquire(tmp_path)


def test_an_overwriting_run_refuses_while_another_holds_the_folder(tmp_path: Path, other_process) -> None:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.pt").write_bytes(b"the first run's")
    plant_claim(run_dir, pid=other_process[0], process_start=other_process[1])
    cfg = compose_train(["trainer.overwrite=true", f"hydra.run.dir={run_dir}"], return_hydra_config=True)
    with pytest.raises(SystemExit) as done:  # the callback's one paragraph, exit 2
        TrainGuard().on_run_start(cfg)
    assert done.value.code == 2
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == b"the first run's"


def test_stale_temp_files_go_at_the_next_claim_and_cache_build(tmp_path: Path, other_process) -> None:
    run_dir, tag = tmp_path / "run", host_tag()
    (run_dir / "checkpoints").mkdir(parents=True)
    killed = run_dir / "checkpoints" / f".last.pt.gaitgraph-{dead_pid()}@{tag}-k1ll3d_x.tmp"
    running = run_dir / f".metrics.json.gaitgraph-{other_process[0]}@{tag}-w0rk1ng.tmp"
    foreign = run_dir / f".metrics.json.gaitgraph-{dead_pid()}@elsewhere-abcdefgh.tmp"
    other = run_dir / "checkpoints" / ".notes.txt.abc.tmp"  # not the platform's naming
    for path in (killed, running, foreign, other):
        path.write_bytes(b"partial")
    with claim.holding(run_dir):
        assert not killed.exists() and running.exists() and foreign.exists() and other.exists()
    cache = tmp_path / "cache" / "psymo10-0123.h5"
    cache.parent.mkdir()
    left = cache.with_name(f".{cache.name}.gaitgraph-{dead_pid()}@{tag}-abcdefgh.tmp")
    other_cache = cache.with_name(f".other.h5.gaitgraph-{dead_pid()}@{tag}-abcdefgh.tmp")
    left.write_bytes(b"partial")
    other_cache.write_bytes(b"partial")

    def build() -> Any:
        raise KeyboardInterrupt  # killed again: only the first step, the cleanup, is under test

    with pytest.raises(KeyboardInterrupt):
        ensure(cache, build, {})
    assert not left.exists() and other_cache.exists(), "only the temp files of the file being built"


def test_atomic_write_names_its_temp_file_after_this_process(tmp_path: Path) -> None:
    seen = []
    atomic_write(tmp_path / "a.json", lambda tmp: (seen.append(tmp.name), tmp.write_text("{}")))
    found = TEMP_NAME.fullmatch(seen[0])
    assert found and (found["name"], int(found["pid"]), found["host"]) == ("a.json", os.getpid(), host_tag())
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def _train(run_dir: Path, seed: int, cwd: Path, cache: Path) -> Forked:
    """A ``debug=fdr`` run into ``run_dir``, in a process of its own (forked, tests/forked.py), that holds the folder
    for 8 s before its first step; its output goes to ``<cwd>/<seed>/stdout.txt``."""
    overrides = [
        "debug=fdr",
        "logger=none",
        "baseline=false",
        f"trainer.seed={seed}",
        f"hydra.run.dir={run_dir}",
        f"paths.output_root={cwd}",
        f"paths.cache_dir={cache}",
        "+callbacks.pause._target_=tests.faults.test_run_folder.Pause",
        "+callbacks.pause.seconds=8",
    ]
    return Forked("gaitgraph.train", overrides, cwd / str(seed), cwd=cwd, merged=True)


@pytest.mark.slow
def test_two_runs_started_together_into_one_folder_one_refuses(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    skip_drawing(monkeypatch)  # the forked runs inherit it: no picture is looked at (tests/no_drawing.py)
    run_dir = tmp_path / "run"
    procs = {seed: _train(run_dir, seed, tmp_path, shared_cache) for seed in (5318008, 7)}
    done = {seed: ((ended := p.wait(timeout=600)).returncode, ended.stdout) for seed, p in procs.items()}
    codes = sorted(code for code, _ in done.values())
    assert codes == [0, 2], {s: (c, out[-2000:]) for s, (c, out) in done.items()}
    winner = next(seed for seed, (code, _) in done.items() if code == 0)
    refused = next(out for code, out in done.values() if code == 2)
    assert "Traceback" not in refused
    paragraph = [line for line in refused.splitlines() if line.startswith("run directory in use: ")]
    assert len(paragraph) == 1 and "nothing was changed" in paragraph[0]
    # the holder is named, or, when the loser looked in the instant between the claim file's creation and its
    # record (a loaded machine), said to be claiming it right now
    assert f"on host {HOST}" in paragraph[0] or "claiming it at this moment" in paragraph[0], paragraph[0]
    # the first run's files are its own: Hydra's record and every checkpoint hold its seed
    assert f"  seed: {winner}\n" in (run_dir / ".hydra" / "config.yaml").read_text()
    last = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert last["config"]["trainer"]["seed"] == winner
    assert not (run_dir / claim.CLAIM).exists(), "released when the run ended"


def test_the_guard_holds_the_folder_of_a_run_or_a_sweep_until_it_ends(tmp_path: Path, other_process) -> None:
    cfg = compose_train([], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.run.dir, cfg.hydra.sweep.dir = str(tmp_path / "run"), str(tmp_path / "sweep")
    hooks = (("run", "on_run_start", "on_run_end"), ("sweep", "on_multirun_start", "on_multirun_end"))
    for folder, start, end in hooks:
        guard = TrainGuard()
        getattr(guard, start)(cfg)
        assert json.loads((tmp_path / folder / claim.CLAIM).read_text())["pid"] == os.getpid()
        getattr(guard, end)(cfg)
        assert not (tmp_path / folder / claim.CLAIM).exists()
    plant_claim(tmp_path / "sweep", pid=other_process[0], process_start=other_process[1])
    with pytest.raises(SystemExit):  # a second sweep into a sweep folder in use
        TrainGuard().on_multirun_start(cfg)
