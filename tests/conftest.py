"""Shared fixtures: the real Hydra config, composed once per test, with writes redirected to tmp."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gaitgraph import CONF_DIR
from gaitgraph.skeletons import Skeleton

# optuna 2.10 on SQLAlchemy 1.4 warns about 2.0 on every storage call.
os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
os.environ.setdefault("WANDB_SILENT", "true")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Several test processes share the cores: one torch thread each (and in their subprocesses), or the
    # OpenMP pools of the workers spin against each other and the suite gets slower, not faster.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


#: Entry points whose config has a trainer group: tests run them on the CPU unless they test devices.
DEVICE_ENTRIES = ("gaitgraph.train", "gaitgraph.evaluate", "gaitgraph.visualize", "gaitgraph.predict")


def on_cpu(overrides: list[str]) -> list[str]:
    """``overrides`` plus ``trainer.device=cpu``, unless they choose a device themselves (a test of devices)."""
    chosen = any(o.split("=", 1)[0].lstrip("+") == "trainer.device" for o in overrides)
    return overrides if chosen else [*overrides, "trainer.device=cpu"]


def compose_train(overrides: list[str] | None = None, return_hydra_config: bool = False):
    """Compose conf/train.yaml with overrides through Hydra's compose API (on the CPU, see :func:`on_cpu`)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose("train", overrides=on_cpu(overrides or []), return_hydra_config=return_hydra_config)


@functools.cache
def skeleton(name: str = "coco17") -> Skeleton:
    """The ``keypoints=<name>`` skeleton as a run builds it (defaults lists included)."""
    return instantiate(compose_train([f"keypoints={name}"]).keypoints)


def config_options(group: str) -> list[str]:
    """Every option file of a config group."""
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def run_module(args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None):
    """Run ``python -m ...`` with this interpreter, returning the CompletedProcess (entry points on the CPU)."""
    import subprocess

    if args and args[0] in DEVICE_ENTRIES and "--cfg" not in args:
        args = [args[0], *on_cpu(list(args[1:]))]
    full_env = {**os.environ, "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=full_env
    )


@pytest.fixture
def tmp_outputs(tmp_path: Path) -> list[str]:
    """Overrides that send every output (runs, cache) into tmp_path."""
    return [f"paths.output_root={tmp_path}/outputs", f"paths.cache_dir={tmp_path}/cache"]
