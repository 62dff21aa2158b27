"""The memory guard: the estimate grows with the step, and the choice between plain, recomputed and refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from omegaconf import open_dict

from gaitgraph.engine.budget import HEADROOM, MemoryEstimate, choose_recompute, estimate
from gaitgraph.errors import MemoryBudgetError
from gaitgraph.models.resgcn import ResGCN
from gaitgraph.train import train

from ..conftest import compose_train
from .conftest import coco17


def test_the_estimate_scales_with_batch_and_length_and_recomputation_keeps_less():
    model = ResGCN(coco17(), [1, 1, 1, 1], "Bottleneck", 8, 128)
    small, double_batch, double_length = (estimate(model, b, t) for b, t in ((32, 30), (64, 30), (32, 60)))
    assert small.model_state == double_batch.model_state > 0
    assert double_batch.activations == pytest.approx(2 * small.activations, rel=0.02)
    assert double_length.activations == pytest.approx(2 * small.activations, rel=0.1)
    assert small.activations_recomputed < small.activations / 2
    assert next(model.parameters()).device.type == "cpu", "the estimate runs on a copy"


def test_the_choice_between_plain_recomputed_and_refused():
    est = MemoryEstimate(model_state=0, activations=10 * 10**9, activations_recomputed=2 * 10**9)
    plain, recomputed = est.peak(False), est.peak(True)
    # central estimates 1.5 x 10 GB + 0.65 GB and 1.5 x 2 GB + 0.65 GB, planned with 30 % headroom
    assert (plain, recomputed) == (int(15.65e9 * HEADROOM), int(3.65e9 * HEADROOM))
    assert choose_recompute("auto", est, plain, True, "x") is False
    assert choose_recompute("auto", est, recomputed, True, "x") is True
    assert choose_recompute(True, est, recomputed, True, "x") is True
    with pytest.raises(
        MemoryBudgetError,
        match=r"x may need up to 20\.3 GB .*Ways out: trainer\.recompute"
        r"=true \(about 4\.7 GB\)",
    ):
        choose_recompute(False, est, recomputed, True, "x")
    with pytest.raises(MemoryBudgetError, match=r"may need up to 4\.7 GB.*smaller trainer\.batch_size"):
        choose_recompute("auto", est, recomputed - 1, True, "x")
    with pytest.raises(MemoryBudgetError, match="may need up to 20.3 GB"):  # a model without recomputable modules
        choose_recompute("auto", est, recomputed, False, "x")


def test_an_estimate_is_made_once_per_architecture_and_batch_shape(monkeypatch: pytest.MonkeyPatch):
    """Sweep trials that change no architecture reuse the estimate; anything the step's memory depends on (the
    model, the joint layout, the batch, the window) makes a new one."""
    from gaitgraph.engine import budget, build

    made = []
    monkeypatch.setattr(budget, "_estimates", {})
    monkeypatch.setattr(budget, "estimate", lambda network, b, t: made.append((b, t)) or MemoryEstimate(1, 2, 3))
    same = {build._architecture(compose_train(o), 16) for o in ([], ["optimizer.optimizer.lr=0.1", "trainer.seed=3"])}
    assert len(same) == 1
    cases = (
        (["model=resgcn_n39_r8"], 16),
        (["keypoints=openpose"], 16),
        ([], 32),
        (["dataset.sequence_length=40"], 16),
    )
    others = [build._architecture(compose_train(o), b) for o, b in cases]
    assert len({*same, *others}) == 5
    for key in [*same, *others, *others, *same]:
        assert budget.estimate_once(key, None, 16, 30) == MemoryEstimate(1, 2, 3)
    assert len(made) == 5


@pytest.mark.slow
def test_auto_switches_recomputation_on_when_the_plain_step_would_not_fit(tmp_path: Path, shared_cache: Path, caplog):
    overrides = [
        "trainer.epochs=1",
        "trainer.batch_size=64",
        "dataset.sequence_length=20",
        "logger=none",
        "baseline=false",
        "trainer.num_threads=1",
        f"paths.cache_dir={shared_cache}",
    ]
    cfg = compose_train(overrides)
    model = ResGCN(coco17(), [1, 1, 1, 1], "Bottleneck", 8, 128)
    est = estimate(model, 64, 20)
    between = (est.peak(False) + est.peak(True)) / 2 / 1e9
    cfg = compose_train([*overrides, f"trainer.memory.limit_gb={between}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="gaitgraph.engine.budget"):
        train(cfg)
    assert "switched trainer.recompute on" in caplog.text
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["history"][0]["train/loss_epoch"] > 0
