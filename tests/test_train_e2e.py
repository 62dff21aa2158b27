"""End to end on the real embedded PsyMo-10 data: the real console script and the real train()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gaitgraph.engine.build import load_splits
from gaitgraph.engine.distributed import DistContext
from gaitgraph.evaluation.evaluator import Evaluator
from gaitgraph.models import build_model
from gaitgraph.sweep.compare import references
from gaitgraph.utils import build, seed_everything

from .conftest import TrainedRun, run_console

# One torch thread: num_threads=auto takes every core, and on cores shared with other tests the waiting threads cost
# more CPU than these small steps.
TINY = [
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "dataset.sequence_length=30",
    "trainer.device=cpu",
    "trainer.num_threads=1",
]
#: How far the session's shared run (tests/conftest.py TRAINED_RUN, 20-frame windows: measured 43.6 % / 44.9 % test
#: mean rank-1 on seeds 1 / 2; 42.9 % / 46.8 % with 30-frame windows) must beat the nearest-neighbour pose baseline
#: (28.0 %; 27.7 % on 30 frames) and the same network untrained (27.7 % / 29.8 % on 30 frames; chance 25 %).
MARGIN = 0.08


@pytest.mark.slow
def test_console_script_writes_a_complete_run_dir(tmp_path: Path, shared_cache: Path):
    """``gaitgraph-train`` in a new process: the smoke test of the console script, and a complete run folder."""
    run_dir = tmp_path / "run"
    result = run_console(
        "gaitgraph-train",
        [
            *TINY,
            f"paths.output_root={tmp_path}",
            f"paths.cache_dir={shared_cache}",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for rel in (
        ".hydra/config.yaml",
        "config_tree.txt",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
        "metrics.json",
        "curves.png",
        "eval/results.csv",
        "eval/results.json",
        "eval/results.md",
        "eval/paper_table.tex",
        "eval/heatmap.png",
    ):
        assert (run_dir / rel).is_file(), f"missing {rel}"
    offline = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    assert offline, "no offline W&B run"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["metric_name"] == "val/rank1"
    assert metrics["metric"] == pytest.approx(metrics["val"]["psymo10"]["mean_rank1"])
    assert metrics["baseline"]["test"]["psymo10"]["mean_rank1"] == pytest.approx(0.2774, abs=1e-4)
    # compare_runs draws its reference lines from these keys: the baseline scored like the metric (validation)
    refs, notes = references([metrics])
    assert notes == [] and refs.chance == 0.5
    assert refs.baseline == pytest.approx(metrics["baseline"]["val"]["psymo10"]["mean_rank1"])
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert {
        "model",
        "optimizer",
        "scheduler",
        "batches",
        "rng",
        "augment_rng",
        "callbacks",
        "epoch",
        "step",
        "epoch_loss_sum",
        "history",
        "config",
    } <= set(ckpt)
    assert ckpt["config"]["dataset"]["name"] == "psymo10" and ckpt["step"] == 3  # 192 sequences / 64
    # The per-view table reaches the terminal and train.log tells the story: each epoch, the table, the result.
    assert "psymo10" in result.stdout and "mean" in result.stdout
    log = (run_dir / "train.log").read_text()
    assert "epoch 1/1: train/loss_epoch" in log and "val/rank1" in log
    assert "test results [psymo10]" in log and "│ wss" in log and "val/rank1 (the objective)" in log


@pytest.mark.slow
def test_a_short_run_learns_more_than_the_baseline_and_the_untrained_network(trained_run: TrainedRun):
    cfg, value, metrics = trained_run.config(), trained_run.value, trained_run.metrics
    assert metrics["metric"] * 100 == pytest.approx(value)  # train() returns percent, metrics.json fractions
    trained = metrics["test"]["psymo10"]["mean_rank1"]
    baseline = metrics["baseline"]["test"]["psymo10"]["mean_rank1"]
    skeleton = build(cfg.keypoints)
    seed_everything(cfg.trainer.seed)
    untrained_net = build_model(cfg.model, skeleton)  # the same initial weights the run started from
    test = load_splits(DistContext(), cfg, skeleton).test
    untrained = Evaluator(cfg, skeleton, torch.device("cpu")).results(untrained_net, test, False, "test")["psymo10"]
    assert trained >= baseline + MARGIN, (trained, baseline)
    assert trained >= untrained.mean_rank1 + MARGIN, (trained, untrained.mean_rank1)
    assert value > (metrics["chance"] + 0.25) * 100, "validation (2 subjects) well above its 50 % chance"
