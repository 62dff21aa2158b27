"""Exact resume: a run killed (SIGKILL) mid-epoch and resumed ends with the same weights as an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from gaitgraph.engine.checkpoint import resume_path
from gaitgraph.errors import CheckpointError

# 288 PsyMo-10 training sequences / 32 = 9 steps per epoch; a mid-epoch checkpoint every 2 steps.
TINY = [
    "dataset.sequence_length=16", "trainer.batch_size=32", "model=resgcn_n21_r8", "trainer.deterministic=true",
    "trainer.num_threads=1", "logger=none", "baseline=false", "trainer.epochs=2",
    "trainer.checkpoint_every_steps=2",
]


def _cmd(run_dir: Path, cache: Path, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "gaitgraph.train", *TINY, f"hydra.run.dir={run_dir}",
            f"paths.cache_dir={cache}", f"paths.output_root={run_dir.parent}", *extra]


def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline"}


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


def test_resume_path(tmp_path: Path):
    assert resume_path(None, tmp_path) is None
    assert resume_path("auto", tmp_path) is None  # nothing to resume: fresh start
    last = tmp_path / "checkpoints" / "last.pt"
    last.parent.mkdir()
    last.write_bytes(b"x")
    assert resume_path("auto", tmp_path) == last
    with pytest.raises(CheckpointError, match="missing.pt: no such file"):
        resume_path(str(tmp_path / "missing.pt"), tmp_path)


@pytest.mark.slow
def test_killed_mid_epoch_then_resumed_matches_uninterrupted(tmp_path: Path):
    cache = tmp_path / "cache"
    straight = tmp_path / "straight"
    done = subprocess.run(_cmd(straight, cache, []), capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]

    resumed = tmp_path / "resumed"
    last = resumed / "checkpoints" / "last.pt"
    proc = subprocess.Popen(_cmd(resumed, cache, ["trainer.resume=auto"]), env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    killed_at = None
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if last.is_file():
                ckpt = torch.load(last, weights_only=True)
                if ckpt["step"] > 0 and ckpt["batches"]["position"] > 0 and ckpt["epoch"] < 2:
                    os.kill(proc.pid, signal.SIGKILL)
                    killed_at = (ckpt["epoch"], ckpt["batches"]["position"])
                    break
            time.sleep(0.02)
    finally:
        if proc.poll() is None and killed_at is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert killed_at is not None, f"never saw a mid-epoch checkpoint: {proc.stderr.read()[-3000:]}"
    assert proc.returncode == -signal.SIGKILL

    again = subprocess.run(_cmd(resumed, cache, ["trainer.resume=auto"]), capture_output=True, text=True,
                           env=_env(), timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from" in (resumed / "train.log").read_text()

    a, b = _weights(straight), _weights(resumed)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"killed at (epoch, batch) {killed_at}; tensors differ: {different[:5]}"
