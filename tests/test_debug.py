"""Every debug config runs through the real train() on the embedded PsyMo-10 data, and each keeps its promise.

The cases come from ``conf/debug/``, so a new debug config runs here without anyone adding a line (this is the
``debug=`` group's build-and-run test; tests/test_options.py covers the other groups). A config with a promise below
runs at its own budget of steps and epochs (on smaller windows, :data:`SMALL`) and is checked against it; any other
runs cut to two short epochs. No run draws its pictures (tests/no_drawing.py: nothing here opens one).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.engine.trainer import Trainer
from gaitgraph.evaluation import pipeline
from gaitgraph.train import train

from .conftest import compose_train, config_options
from .no_drawing import skip_drawing

#: The budget of a debug config without a promise of its own (``debug=default`` sets none).
CUT = ["trainer.epochs=2", "trainer.limit_batches=2", "trainer.batch_size=8", "dataset.sequence_length=8"]
#: limit, overfit and profiler promise steps, epochs, a loss floor and files, not a size: they run on 8-frame windows
#: (limit and the profiler on batches of 8 too; overfit keeps its P x K batch, which its floor depends on), and the
#: profiler records one step after its wait and warm-up instead of three, its table sorting a third of the events.
#: overfit and the profiler write no checkpoints: their promises read none (overfit wrote last.pt 15 times), and
#: fdr's and limit's, which read last.pt, keep theirs. Measured (CPU-s,
#: warm process): limit 3.6 -> 2.4, overfit 9 -> 5.7 (its loss ends within 0.2 % of the way to the floor at seeds
#: 0-3, against 0.4 % at 16 frames; the test allows 5 %), profiler 6.1 -> 3.5; debug=limit took 23 at 32 x 30 frames.
SMALL = {
    "limit": ["trainer.batch_size=8", "dataset.sequence_length=8"],
    "overfit": ["dataset.sequence_length=8", "callbacks.checkpointing=null"],
    "profiler": [
        "dataset.sequence_length=8",
        "callbacks.profiling.active=1",
        "trainer.limit_batches=3",
        "trainer.batch_size=8",
        "callbacks.checkpointing=null",
    ],
}


@dataclass
class Run:
    """What a debug run left: its folder, metrics.json, counted calls and the gaitgraph log lines."""

    folder: Path
    metrics: dict
    calls: dict[str, int]
    said: list[str]

    def last_checkpoint(self) -> dict:
        return torch.load(self.folder / "checkpoints" / "last.pt", weights_only=True)


def _fdr(run: Run) -> None:
    """Two steps, a validation and the test evaluation, no pose baseline; the budget said before and after."""
    last = run.last_checkpoint()
    assert (last["step"], last["epoch"]) == (2, 1)
    assert "val/rank1" in run.metrics["history"][0] and run.metrics["test"]["psymo10"]["mean_rank1"] >= 0
    assert run.calls == {"step": 2, "baseline": 0}
    budget = [line for line in run.said if line.startswith("budget:")]
    assert budget[0] == "budget: 2 steps per epoch x 1 epochs = 2 steps", budget
    assert budget[1].startswith("budget: 2 steps took ") and "about 0s of training left" in budget[1], budget


def _limit(run: Run) -> None:
    """N batches per epoch for 3 epochs, validating every epoch."""
    assert run.last_checkpoint()["step"] == 3 * 3
    assert [r["epoch"] for r in run.metrics["history"]] == [1, 2, 3]
    assert all("val/rank1" in r for r in run.metrics["history"])


def _overfit(run: Run) -> None:
    """Two fixed batches, no augmentation: the loss falls to SupCon's floor."""
    losses = [r["train/loss_epoch"] for r in run.metrics["history"]]
    floor = math.log(8 - 1)  # P x K = 4 x 8: SupCon's minimum, every positive at distance 0
    assert losses[-1] - floor < 0.05 * (losses[0] - floor), losses


def _profiler(run: Run) -> None:
    """A trace with events and the table of the top operators."""
    folder = run.folder / "profiler"
    assert json.loads((folder / "trace.json").read_text())["traceEvents"], "an empty trace"
    top = (folder / "top_operators.txt").read_text()
    assert "Self CPU" in top and "aten::" in top


PROMISES: dict[str, Callable[[Run], None]] = {"fdr": _fdr, "limit": _limit, "overfit": _overfit, "profiler": _profiler}
#: Promises that take more than a few steps: left out of make test-fast.
LONG = {"limit", "overfit", "profiler"}


def _counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Count the optimizer steps and the pose-baseline scorings of the run about to start."""
    calls = {"step": 0, "baseline": 0}
    step, baseline = Trainer._step, pipeline.evaluate_baseline

    def counted_step(self: Trainer, *args, **kwargs):
        calls["step"] += 1
        return step(self, *args, **kwargs)

    def counted_baseline(*args, **kwargs):
        calls["baseline"] += 1
        return baseline(*args, **kwargs)

    monkeypatch.setattr(Trainer, "_step", counted_step)
    monkeypatch.setattr(pipeline, "evaluate_baseline", counted_baseline)
    return calls


@pytest.mark.parametrize(
    "option", [pytest.param(o, marks=pytest.mark.slow) if o in LONG else o for o in config_options("debug")]
)
def test_each_debug_config_runs_and_keeps_its_promise(
    option: str, tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls = _counted(monkeypatch)
    skip_drawing(monkeypatch)
    budget = SMALL.get(option, []) if option in PROMISES else CUT
    cfg = compose_train([f"debug={option}", *budget, f"paths.cache_dir={shared_cache}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="gaitgraph"):
        train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    said = [r.getMessage() for r in caplog.records if r.name.startswith("gaitgraph")]
    assert metrics["history"], f"debug={option} trained no epoch"
    PROMISES.get(option, lambda run: None)(Run(tmp_path / "run", metrics, calls, said))
