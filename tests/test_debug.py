"""Each debug config keeps its promise, through the real train()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.train import train

from .conftest import compose_train


def _train(tmp_path: Path, cache: Path, *overrides: str) -> dict:
    cfg = compose_train([*overrides, f"paths.cache_dir={cache}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    train(cfg)
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


def test_fdr_runs_two_steps_a_validation_and_the_test_evaluation(tmp_path: Path, shared_cache: Path):
    metrics = _train(tmp_path, shared_cache, "debug=fdr")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == 2 and last["epoch"] == 1
    assert "val/rank1" in metrics["history"][0] and metrics["test"]["psymo10"]["mean_rank1"] >= 0


@pytest.mark.slow
def test_limit_trains_n_batches_per_epoch(tmp_path: Path, shared_cache: Path):
    metrics = _train(tmp_path, shared_cache, "debug=limit")
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    assert last["step"] == 3 * 3 and [r["epoch"] for r in metrics["history"]] == [1, 2, 3]
    assert all("val/rank1" in r for r in metrics["history"])  # val_every 1


@pytest.mark.slow
def test_overfit_drives_the_loss_to_its_floor(tmp_path: Path, shared_cache: Path):
    # shorter windows: a faster test
    metrics = _train(tmp_path, shared_cache, "debug=overfit", "dataset.sequence_length=16")
    losses = [r["train/loss_epoch"] for r in metrics["history"]]
    floor = math.log(8 - 1)  # P x K = 4 x 8: SupCon's minimum, every positive at distance 0
    assert losses[-1] - floor < 0.05 * (losses[0] - floor), losses


@pytest.mark.slow
def test_profiler_writes_a_trace_and_the_top_operators(tmp_path: Path, shared_cache: Path):
    _train(tmp_path, shared_cache, "debug=profiler")
    folder = tmp_path / "run" / "profiler"
    trace = json.loads((folder / "trace.json").read_text())
    assert trace["traceEvents"], "an empty trace"
    top = (folder / "top_operators.txt").read_text()
    assert "Self CPU" in top and "aten::" in top
