"""Shared fixtures: the real Hydra config, composed once per test, with writes redirected to tmp; the Hydra
entry points run in this process (:func:`run_app`); one trained PsyMo-10 run and one pose cache per test session,
shared by every test file and every pytest-xdist worker (:func:`trained_run`, :func:`shared_cache`)."""

from __future__ import annotations

# First, before anything loads torch: the environment every command starts with (passive OpenMP waiting above all:
# the workers share the cores, and torch reads the policy once, when it loads).
import gaitgraph.process_env  # noqa: F401  # isort: skip

import functools
import importlib
import io
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from contextlib import chdir, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest
from filelock import FileLock
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, open_dict

import gaitgraph.conf  # noqa: F401 - the resolvers and schema compose_train's configs need
from gaitgraph import CONF_DIR
from gaitgraph.skeletons import Skeleton

from . import yaml_memo

# optuna 2.10 on SQLAlchemy 1.4 warns about 2.0 on every storage call.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several test processes share the cores: one torch thread each (and in their subprocesses and runs, whose
    # trainer.num_threads=auto stays within an exported OMP_NUM_THREADS), or the OpenMP pools of the workers
    # spin against each other and the suite gets slower, not faster.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

yaml_memo.install()

#: Entry points whose config has a trainer group: tests run them on the CPU unless they test devices.
DEVICE_ENTRIES = ("gaitgraph.train", "gaitgraph.evaluate", "gaitgraph.visualize", "gaitgraph.predict")


def on_cpu(overrides: list[str]) -> list[str]:
    """``overrides`` plus ``trainer.device=cpu``, unless they choose a device themselves (a test of devices)."""
    chosen = any(o.split("=", 1)[0].lstrip("+") == "trainer.device" for o in overrides)
    return overrides if chosen else [*overrides, "trainer.device=cpu"]


def compose_config(name: str, overrides: list[str] | None = None, return_hydra_config: bool = False):
    """Compose conf/<name>.yaml with overrides through Hydra's compose API (on the CPU, see :func:`on_cpu`)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(name, overrides=on_cpu(overrides or []), return_hydra_config=return_hydra_config)


def compose_train(overrides: list[str] | None = None, return_hydra_config: bool = False):
    """Compose conf/train.yaml with overrides (:func:`compose_config`)."""
    return compose_config("train", overrides, return_hydra_config)


@functools.cache
def skeleton(name: str = "coco17") -> Skeleton:
    """The ``keypoints=<name>`` skeleton as a run builds it (defaults lists included)."""
    return instantiate(compose_train([f"keypoints={name}"]).keypoints)


def config_options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


#: The console scripts of pyproject's [project.scripts] and the module each runs.
CONSOLE_SCRIPTS = {
    "gaitgraph-train": "gaitgraph.train",
    "gaitgraph-eval": "gaitgraph.evaluate",
    "gaitgraph-viz": "gaitgraph.visualize",
    "gaitgraph-predict": "gaitgraph.predict",
    "gaitgraph-cache": "gaitgraph.data.cache",
    "gaitgraph-synthetic": "gaitgraph.data.synthetic",
}


def run_module(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run ``python -m ...`` with this interpreter, returning the CompletedProcess (entry points on the CPU)."""
    return _run_process([sys.executable, "-m", args[0]], args[0], args[1:], cwd, timeout, env)


def run_console(script: str, args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run an installed console script (``gaitgraph-train``, ... beside this interpreter) in a new process,
    returning the CompletedProcess (entry points on the CPU). One smoke test per script uses it."""
    command = [str(Path(sys.executable).parent / script)]
    return _run_process(command, CONSOLE_SCRIPTS[script], args, cwd, timeout, env)


def _run_process(command: list[str], module: str, args: list[str], cwd: Path, timeout: int, env: dict | None):
    import subprocess

    if module in DEVICE_ENTRIES and "--cfg" not in args:
        args = on_cpu(list(args))
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([*command, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture
def tmp_outputs(tmp_path: Path) -> list[str]:
    """Overrides that send every output (runs, cache) into tmp_path."""
    return [f"paths.output_root={tmp_path}/outputs", f"paths.cache_dir={tmp_path}/cache"]


@dataclass
class AppResult:
    """What a command line run of an entry point left: its exit status and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_app(module: str, args: list[str], env: dict | None = None, cwd: Path | None = None) -> AppResult:
    """Run the Hydra app ``<module>.main`` in this process as ``python -m <module> args`` would (sys.argv, Hydra's
    run directory, logging and error handling, exit status), without the seconds of a new interpreter's imports.

    Entry points with a trainer group run on the CPU (:func:`on_cpu`); ``env`` is added to the environment and
    ``cwd`` is the working directory while it runs. Use :func:`run_module` / :func:`run_console` only where the
    process boundary itself is tested (signals, ``os._exit``, file-size limits, console scripts)."""
    if module in DEVICE_ENTRIES and "--cfg" not in args:
        args = on_cpu(list(args))
    return _in_process(importlib.import_module(module).main, [module, *args], env, cwd)


def run_script(path: Path, args: list[str], env: dict | None = None, cwd: Path | None = None) -> AppResult:
    """Run ``python <path> args`` (one of scripts/) in this process, as :func:`run_app` runs an entry point."""
    import runpy

    return _in_process(lambda: runpy.run_path(str(path), run_name="__main__"), [str(path), *args], env, cwd)


def _in_process(main: Callable[[], object], argv: list[str], env: dict | None, cwd: Path | None) -> AppResult:
    """Call ``main()`` with ``argv`` as sys.argv, ``env`` added to the environment and ``cwd`` as the working
    directory, capturing what it prints and its exit status; Hydra's global state and the root logger are restored
    afterwards."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    code = 0
    environ = {"WANDB_MODE": "offline", "HYDRA_FULL_ERROR": "0", **(env or {})}
    with chdir(cwd or Path.cwd()), mock.patch.dict(os.environ, environ):
        with mock.patch.object(sys, "argv", argv), redirect_stdout(out), redirect_stderr(err):
            try:
                main()
            except SystemExit as done:
                code = done.code if isinstance(done.code, int) else int(done.code is not None)
            finally:
                # Hydra keeps its global state (the config search and the app's HydraConfig, which a later
                # in-process run_dir_of would read) and points the root logger at the run's train.log: undo all.
                GlobalHydra.instance().clear()
                HydraConfig.instance().cfg = None
                for handler in root.handlers:
                    if handler not in handlers:
                        handler.close()
                root.handlers[:] = handlers
                root.setLevel(level)
    return AppResult(code, out.getvalue(), err.getvalue())


def shared_dir(tmp_path_factory: pytest.TempPathFactory, name: str) -> Path:
    """``<session root>/shared/<name>``: the same folder for every pytest-xdist worker of this test session."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # each worker's basetemp is <session root>/popen-gwN
    folder = root / "shared" / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pose cache folder for the session: PsyMo-10 is parsed once (the cache locks its own builds)."""
    return shared_dir(tmp_path_factory, "cache")


#: The shared run: 10 epochs of 6 steps (192 PsyMo-10 training sequences, batch 32, 20-frame windows) on one thread.
#: Measured, seeds 1 and 2: test mean rank-1 43.6 % / 44.9 %, against 28.0 % for the nearest-neighbour pose baseline
#: (chance 25 %); tests/test_train_e2e.py asks for +8 points over it and over the same network untrained. 30-frame
#: windows learnt no better (42.9 % / 46.8 %) for 1.5x the CPU seconds (26-29 s against about 43 s).
TRAINED_RUN = [
    "trainer.epochs=10",
    "trainer.batch_size=32",
    "dataset.sequence_length=20",
    "trainer.device=cpu",
    "trainer.seed=1",
    "logger=none",
    "trainer.num_threads=1",
]


@dataclass(frozen=True)
class TrainedRun:
    """A finished run of :data:`TRAINED_RUN` shared by the whole session: read it, never write into it (copy
    it first, :meth:`copy`)."""

    run_dir: Path
    cache: Path
    overrides: tuple[str, ...]
    value: float

    @property
    def ckpt(self) -> Path:
        return self.run_dir / "checkpoints" / "best.pt"

    @property
    def metrics(self) -> dict:
        return json.loads((self.run_dir / "metrics.json").read_text())

    def config(self) -> DictConfig:
        """The run's composed config (its output_dir included)."""
        cfg = compose_train([*self.overrides, f"paths.cache_dir={self.cache}"])
        with open_dict(cfg):
            cfg.paths.output_dir = str(self.run_dir)
        return cfg

    def copy(self, dest: Path) -> Path:
        """A private copy of the run folder, for tests that resume, rerun or write into it."""
        shutil.copytree(self.run_dir, dest)
        return dest


def _train_shared_run(tmp_path_factory: pytest.TempPathFactory, cache: Path, wait: bool) -> Path | None:
    """Train :data:`TRAINED_RUN` once per session, under a file lock shared by the pytest-xdist workers; its
    ``value.json``, or None where ``wait`` is False and another worker holds the lock (it is training)."""
    from filelock import Timeout

    from gaitgraph.train import train

    folder = shared_dir(tmp_path_factory, "trained_run")
    run_dir, done = folder / "run", folder / "value.json"
    try:
        with FileLock(str(folder / "train.lock"), timeout=-1 if wait else 0):
            if not done.is_file():
                shutil.rmtree(run_dir, ignore_errors=True)  # what a crashed first attempt left
                cfg = TrainedRun(run_dir, cache, tuple(TRAINED_RUN), 0.0).config()
                done.write_text(json.dumps(train(cfg)))
    except Timeout:
        return None
    return done


@pytest.fixture(scope="session", autouse=True)
def _shared_run_trained_early(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where a collected test needs :func:`trained_run`, the first worker to start trains it before its first
    test, and the other goes on with its own tests: a worker waits for the run only if it needs it before it is
    done (trained on first use instead, one worker sat idle ~30 s waiting for the other's training)."""
    if any("trained_run" in getattr(item, "fixturenames", ()) for item in request.session.items):
        _train_shared_run(tmp_path_factory, request.getfixturevalue("shared_cache"), wait=False)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> TrainedRun:
    """The session's one trained PsyMo-10 run (:data:`TRAINED_RUN`), trained in this process unless another
    worker has trained it or is training it (then this waits for it)."""
    done = _train_shared_run(tmp_path_factory, shared_cache, wait=True)
    return TrainedRun(done.parent / "run", shared_cache, tuple(TRAINED_RUN), json.loads(done.read_text()))


#: The test files that take longest (`make test` prints the slowest tests), longest first. pytest-xdist hands out
#: whole files (--dist loadfile) in collection order, so these start first and none is left running alone at the end.
LONGEST_FIRST = (
    "test_options.py",
    "test_sweep.py",
    "test_readme.py",
    "test_integrity.py",
    "test_readme_tools.py",
    "test_readme_launch.py",
    "faults/test_signals.py",
    "test_debug.py",
    "test_postgres_sweep.py",
    "test_zoo_configs.py",
    "faults/test_zombie_trials.py",
    "engine/test_ddp.py",
    "test_dashboard.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Start the longest files first (:data:`LONGEST_FIRST`); every other file keeps its place and its tests their
    order."""
    tests = Path(__file__).parent

    def rank(item: pytest.Item) -> int:
        name = item.path.relative_to(tests).as_posix() if item.path.is_relative_to(tests) else ""
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)

    items.sort(key=rank)
