"""Exact resume: a run killed mid-epoch (at a chosen step, by a callback) and resumed ends with the same weights,
the same epoch losses and the same history as an uninterrupted run. The killed run is a process of its own (SIGKILL),
forked from this one (tests/forked.py); the uninterrupted and the resumed one run their command lines in this process
(tests/conftest.py run_app)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch

from gaitgraph.engine.checkpoint import resume_path
from gaitgraph.errors import CheckpointError

from ..conftest import run_app
from ..forked import Exited, fork_app
from ..no_drawing import skip_drawing

# 192 PsyMo-10 training sequences in batches of 32, the first 2 of each epoch's shuffled batches (the rest of the
# epoch adds compute, not resume state); a checkpoint after every step.
TINY = [
    "dataset.sequence_length=16",
    "trainer.batch_size=32",
    "trainer.limit_batches=2",
    "model=resgcn_n21_r8",
    "trainer.deterministic=true",
    "trainer.num_threads=1",
    "logger=none",
    "baseline=false",
    "trainer.epochs=2",
    "trainer.device=cpu",
    "trainer.checkpoint_every_steps=1",
]
#: Step 3 = epoch 2, batch 1 of 2: its checkpoint is written, then the process is killed.
KILL = ["+callbacks.kill._target_=tests.engine.hooks.KillAtStep", "+callbacks.kill.step=3"]


def _args(run_dir: Path, cache: Path, extra: list[str]) -> list[str]:
    where = [f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", f"paths.output_root={run_dir.parent}"]
    return [*TINY, *where, *extra]


def _killed(run_dir: Path, cache: Path, extra: list[str]) -> Exited:
    """``python -m gaitgraph.train`` in a process of its own, forked (the callback SIGKILLs it)."""
    return fork_app("gaitgraph.train", _args(run_dir, cache, extra), run_dir.parent / "killed")


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
def test_killed_mid_epoch_then_resumed_matches_uninterrupted(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    skip_drawing(monkeypatch)  # no run here looks at its pictures (tests/no_drawing.py)
    cache = shared_cache
    straight = tmp_path / "straight"
    done = run_app("gaitgraph.train", _args(straight, cache, []))
    assert done.returncode == 0, done.stderr[-3000:]

    resumed = tmp_path / "resumed"
    killed = _killed(resumed, cache, ["trainer.resume=auto", *KILL])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    saved = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["step"], saved["epoch"], saved["batches"]["position"]) == (3, 1, 1)

    again = run_app("gaitgraph.train", _args(resumed, cache, ["trainer.resume=auto"]))  # callbacks: no recipe change
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resuming from" in (resumed / "train.log").read_text()

    a = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)
    different = [k for k in a["model"] if not torch.equal(a["model"][k], b["model"][k])]
    assert not different, f"tensors differ: {different[:5]}"
    # The resumed epoch's loss covers the whole epoch (its first batch ran before the kill).
    timing = ("train/samples_per_s", "train/epoch_seconds")
    history = [[{k: v for k, v in r.items() if k not in timing} for r in ckpt["history"]] for ckpt in (a, b)]
    assert history[0] == history[1] and [set(r) >= {"train/loss_epoch", "train/lr"} for r in history[0]]
    assert "val/rank1" in history[0][-1]
