"""debug=fdr stays a seconds-long smoke run: counted, not timed (steps taken, baselines scored, what it says)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from omegaconf import open_dict

from gaitgraph.engine.trainer import Trainer
from gaitgraph.evaluation import pipeline
from gaitgraph.train import train

from .conftest import compose_train


def test_fdr_takes_at_most_two_steps_and_no_baseline(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
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
    cfg = compose_train(["debug=fdr", f"paths.cache_dir={shared_cache}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="gaitgraph"):
        train(cfg)
    assert calls == {"step": 2, "baseline": 0}
    budget = [r.getMessage() for r in caplog.records if r.getMessage().startswith("budget:")]
    # said before the first step, then once the two steps are timed
    assert budget[0] == "budget: 2 steps per epoch x 1 epochs = 2 steps", budget
    assert budget[1].startswith("budget: 2 steps took ") and "about 0s of training left" in budget[1], budget
