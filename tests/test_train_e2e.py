"""End to end on the real embedded PsyMo-10 data: the real entry point and the real train()."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.train import train

from .conftest import compose_train, run_module

TINY = ["trainer.epochs=1", "trainer.batch_size=64", "dataset.sequence_length=30"]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache dir for the session, so PsyMo-10 is parsed once across these tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.slow
def test_entry_point_writes_a_complete_run_dir(tmp_path: Path, shared_cache: Path):
    run_dir = tmp_path / "run"
    result = run_module(
        ["gaitgraph.train", *TINY, f"paths.output_root={tmp_path}", f"paths.cache_dir={shared_cache}",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rel in (".hydra/config.yaml", "checkpoints/last.pt", "checkpoints/best.pt", "metrics.json",
                "eval/results.csv", "eval/results.json", "eval/heatmap.png"):
        assert (run_dir / rel).is_file(), f"missing {rel}"
    offline = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline, "no offline W&B run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert 0.0 <= metrics["metric"] <= 1.0
    assert metrics["baseline"] is not None
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {"model", "optimizer", "scheduler", "batches", "rng", "augment_rng", "epoch", "step", "best", "history",
            "config"} <= set(ckpt)
    assert ckpt["config"]["dataset"]["name"] == "psymo10"
    # The per-view table reaches the terminal.
    assert "psymo10" in result.stdout and "mean" in result.stdout


@pytest.mark.slow
def test_train_returns_mean_rank1(tmp_path: Path, shared_cache: Path):
    cfg = compose_train([*TINY, "logger=none", "baseline=false", f"paths.cache_dir={shared_cache}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    value = train(cfg)
    assert isinstance(value, float) and math.isfinite(value)
    assert 0.0 <= value <= 1.0
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metric"] == pytest.approx(value)
