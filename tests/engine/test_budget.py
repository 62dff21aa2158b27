"""The memory guard: the estimate grows with the step, and the choice between plain, partially or fully recomputed
and refused."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.engine.budget import HEADROOM, MemoryEstimate, choose_recompute, estimate
from gaitgraph.engine.build import build_network
from gaitgraph.errors import MemoryBudgetError
from gaitgraph.models import build_model
from gaitgraph.models.resgcn import ResGCN
from gaitgraph.train import train
from gaitgraph.utils import build

from ..conftest import compose_train
from .conftest import coco17


def test_the_estimate_scales_with_batch_and_length_and_recomputation_keeps_less():
    model = ResGCN(coco17(), [1, 1, 1, 1], "Bottleneck", 8, 128)
    small, double_batch, double_length = (estimate(model, b, t) for b, t in ((32, 30), (64, 30), (32, 60)))
    assert small.model_state == double_batch.model_state > 0
    assert double_batch.activations == pytest.approx(2 * small.activations, rel=0.02)
    assert double_length.activations == pytest.approx(2 * small.activations, rel=0.1)
    assert small.activations_recomputed < small.activations / 2
    assert small.activations_recomputed < small.activations_partial < small.activations
    assert next(model.parameters()).device.type == "cpu", "the estimate runs on a copy"


def test_the_choice_between_the_levels_and_refused():
    est = MemoryEstimate(
        model_state=0, activations=10 * 10**9, activations_partial=6 * 10**9, activations_recomputed=2 * 10**9
    )
    plain, partial, full = (est.peak(level) for level in ("off", "partial", "full"))
    # central estimates 1.5 x 10 / 6 / 2 GB + 0.65 GB, planned with 30 % headroom
    assert (plain, partial, full) == (int(15.65e9 * HEADROOM), int(9.65e9 * HEADROOM), int(3.65e9 * HEADROOM))
    assert [choose_recompute("auto", est, room, "x") for room in (plain, partial, full)] == ["off", "partial", "full"]
    assert choose_recompute(True, est, full, "x") == "full"
    assert choose_recompute("partial", est, plain, "x") == "partial"
    with pytest.raises(
        MemoryBudgetError,
        match=r"x may need up to 20\.3 GB .*Ways out: trainer\.recompute=partial \(about 12\.5 GB\); "
        r"trainer\.recompute=true \(about 4\.7 GB\); a smaller",
    ):
        choose_recompute(False, est, full, "x")
    with pytest.raises(MemoryBudgetError, match=r"up to 12\.5 GB.*Ways out: trainer\.recompute=true \(about 4\.7"):
        choose_recompute("partial", est, full, "x")
    with pytest.raises(MemoryBudgetError, match=r"may need up to 4\.7 GB.*Ways out: a smaller trainer\.batch_size"):
        choose_recompute("auto", est, full - 1, "x")
    nothing_to_recompute = MemoryEstimate(0, 10 * 10**9, 10 * 10**9, 10 * 10**9)
    with pytest.raises(MemoryBudgetError, match=r"may need up to 20\.3 GB.*Ways out: a smaller"):
        choose_recompute("auto", nothing_to_recompute, full, "x")


def test_an_estimate_is_made_once_per_architecture_and_batch_shape(monkeypatch: pytest.MonkeyPatch):
    """Sweep trials that change no architecture reuse the estimate; anything the step's memory depends on (the
    model, the joint layout, the batch, the window, the precision) makes a new one."""
    from gaitgraph.engine import budget, build

    made = []
    monkeypatch.setattr(budget, "_estimates", {})
    monkeypatch.setattr(
        budget, "estimate", lambda network, b, t, amp: made.append((b, t)) or MemoryEstimate(1, 2, 3, 4)
    )
    same = {build._architecture(compose_train(o), 16) for o in ([], ["optimizer.optimizer.lr=0.1", "trainer.seed=3"])}
    assert len(same) == 1
    cases = (
        (["model=resgcn_n39_r8"], 16),
        (["keypoints=openpose"], 16),
        ([], 32),
        (["dataset.sequence_length=40"], 16),
    )
    others = [build._architecture(compose_train(o), b) for o, b in cases]
    others.append(build._architecture(compose_train([]), 16, torch.bfloat16))
    assert len({*same, *others}) == 6
    for key in [*same, *others, *others, *same]:
        assert budget.estimate_once(key, None, 16, 30) == MemoryEstimate(1, 2, 3, 4)
    assert len(made) == 6


@pytest.mark.slow
def test_auto_recomputes_partially_when_the_plain_step_would_not_fit(tmp_path: Path, shared_cache: Path, caplog):
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
    between = (est.peak("off") + est.peak("partial")) / 2 / 1e9
    cfg = compose_train([*overrides, f"trainer.memory.limit_gb={between}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="gaitgraph.engine.budget"):
        train(cfg)
    assert "switched trainer.recompute to partial" in caplog.text
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["history"][0]["train/loss_epoch"] > 0


def test_the_guard_plans_for_the_runs_precision():
    """Under bf16 autocast a step keeps about half the bytes (AutocastOnMeta): with room for a bf16 step but not for
    a float32 one, a bf16 run trains plainly and a float32 run recomputes."""
    cfg = compose_train(["trainer.batch_size=64", "dataset.sequence_length=30"])
    skeleton = build(cfg.keypoints)
    network = build_model(cfg.model, skeleton)
    fp32, bf16 = (estimate(network, 64, 30, amp) for amp in (None, torch.bfloat16))
    assert 0.45 * fp32.activations < bf16.activations < 0.6 * fp32.activations
    room = (bf16.peak("off") + fp32.peak("off")) / 2
    cfg = compose_train(
        ["trainer.batch_size=64", "dataset.sequence_length=30", f"trainer.memory.limit_gb={room / 1e9}"]
    )
    for amp, recomputed in ((torch.bfloat16, False), (None, True)):
        built = build_network(cfg, skeleton, torch.device("cpu"), 64, 1, amp)
        wrapped = [
            name in module.__dict__ for level in ("partial", "full") for module, name in built.recompute_targets(level)
        ]
        assert any(wrapped) is recomputed, amp
