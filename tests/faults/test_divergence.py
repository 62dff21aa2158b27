"""Divergence is caught before a step is applied (a non-finite loss, a non-finite or exploding gradient norm), and the
advice it prints works: the printed command resumes the last good checkpoint with a lower learning rate
(``trainer.resume_changes``), which resume otherwise refuses, and the run finishes finite."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from gaitgraph.engine import resume_changes
from gaitgraph.engine.checkpoint import non_finite_keys, resume_checkpoint
from gaitgraph.engine.divergence import WARMUP, GradNormWatch, total_grad_norm
from gaitgraph.engine.state import CHECKPOINT_FORMAT
from gaitgraph.errors import CheckpointError, ConfigError
from gaitgraph.schema import validate
from tests.conftest import compose_train, run_app
from tests.no_drawing import skip_drawing

LR = "optimizer.optimizer.lr"


def test_a_non_finite_gradient_norm_is_divergence_except_under_the_fp16_scaler():
    assert GradNormWatch(1000.0, clipped=False, scaled=False).judge(math.inf) == "the gradient norm became inf"
    assert "nan" in GradNormWatch(None, clipped=True, scaled=False).judge(math.nan)
    fp16 = GradNormWatch(1000.0, clipped=False, scaled=True)
    assert fp16.judge(math.inf) is None and len(fp16.recent) == 0  # the scaler skips the step; nothing recorded


def test_a_spike_over_the_factor_times_the_recent_median_is_divergence_after_the_warmup():
    watch = GradNormWatch(1000.0, clipped=False, scaled=False)
    assert watch.judge(5000.0) is None  # nothing to compare with yet
    for _ in range(WARMUP):
        assert watch.judge(2.0) is None
    assert watch.judge(1999.0) is None  # under 1000 x the median 2
    problem = watch.judge(2001.0)
    assert problem and "jumped to 2e+03" in problem and "trainer.grad_spike_factor=1000" in problem
    assert len(watch.recent) == WARMUP + 2  # the refused norm is not part of the history
    clipped = GradNormWatch(1000.0, clipped=True, scaled=False)  # the clip handles spikes
    assert all(clipped.judge(v) is None for v in [2.0] * WARMUP + [1e9])
    assert all(GradNormWatch(None, clipped=False, scaled=False).judge(v) is None for v in [2.0] * WARMUP + [1e9])


def test_total_grad_norm_is_the_norm_clip_grad_norm_computes():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    model(torch.randn(5, 4)).square().sum().backward()
    expected = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(total_grad_norm(model.parameters()), expected)
    assert torch.allclose(torch.nn.utils.clip_grad_norm_(model.parameters(), 1e9), expected)


def _onecycle(lr: float, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.OneCycleLR]:
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=20)
    for _ in range(steps):
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def _checkpoint(tmp_path: Path, lr: float, clip: float | None) -> tuple[Path, dict]:
    """A checkpoint after 5 OneCycle steps, its recipe holding ``lr`` (max_lr interpolated from it) and ``clip``."""
    optimizer, scheduler = _onecycle(lr, 5)
    config = {"optimizer": {"optimizer": {"lr": lr}, "scheduler": {"max_lr": lr}}, "trainer": {"grad_clip": clip}}
    state = {
        "format": CHECKPOINT_FORMAT,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": 0,
        "step": 5,
        "history": [],
        "config": config,
    }
    path = tmp_path / "last.pt"
    torch.save(state, path)
    return path, config


def test_resume_refuses_a_lower_lr_unless_named_then_scales_the_schedule_and_records_it(tmp_path: Path):
    path, stored = _checkpoint(tmp_path, lr=1.0, clip=None)
    current = {
        "optimizer": {"optimizer": {"lr": 0.1}, "scheduler": {"max_lr": 0.1}},
        "trainer": {"grad_clip": 2.0, "resume_changes": []},
    }
    with pytest.raises(CheckpointError, match=r"optimizer.optimizer.lr: 1.0 -> 0.1.*trainer.resume_changes"):
        resume_checkpoint(path, current)
    current["trainer"]["resume_changes"] = [LR]
    with pytest.raises(CheckpointError, match=r"trainer.grad_clip: None -> 2.0"):  # named changes only
        resume_checkpoint(path, current)
    current["trainer"]["resume_changes"] = [LR, "trainer.grad_clip"]
    saved = resume_checkpoint(path, current)
    assert saved["history"] == [
        {
            "resumed_at_step": 5,
            "resume_changes": {
                LR: [1.0, 0.1],
                "optimizer.scheduler.max_lr": [1.0, 0.1],
                "trainer.grad_clip": [None, 2.0],
            },
        }
    ]
    # Resumed at 0.1, the schedule goes on exactly as a run started with 0.1 does at that step.
    optimizer, scheduler = _onecycle(0.1, 0)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    fresh, fresh_scheduler = _onecycle(0.1, 5)
    for _ in range(3):
        assert optimizer.param_groups[0]["lr"] == pytest.approx(fresh.param_groups[0]["lr"], rel=1e-12)
        for stepper in (optimizer, scheduler, fresh, fresh_scheduler):
            stepper.step()


def test_resume_changes_names_only_what_a_resume_may_change():
    validate(compose_train([f"trainer.resume_changes=[{LR},trainer.grad_clip]"]))
    with pytest.raises(ConfigError, match=rf"trainer.resume_changes=.*: expected .*{LR}, trainer.grad_clip"):
        validate(compose_train(["trainer.resume_changes=[trainer.epochs]"]))


def test_a_scheduler_key_that_does_not_follow_the_lr_is_still_refused():
    diffs = [(LR, 1.0, 0.1), ("optimizer.scheduler.max_lr", 1.0, 0.5)]
    assert resume_changes.allowed([LR], diffs) == {LR}


# 192 PsyMo-10 training sequences, 8 steps of 16, a checkpoint after every step; from step 4 on the gradient of one
# weight is multiplied by infinity (tests/faults/hooks.py), as in a run whose gradients explode.
TINY = [
    "dataset.sequence_length=16",
    "trainer.batch_size=16",
    "trainer.limit_batches=8",
    "trainer.epochs=1",
    "trainer.deterministic=true",
    "trainer.num_threads=1",
    "trainer.checkpoint_every_steps=1",
    "trainer.device=cpu",
    "logger=none",
    "baseline=false",
]
EXPLODE = [
    "+callbacks.explode._target_=tests.faults.hooks.ExplodeGradientsAtStep",
    "+callbacks.explode.step=3",
    "+callbacks.explode.factor=inf",
]


@pytest.mark.slow
def test_an_exploding_gradient_is_not_applied_and_the_printed_command_continues_the_run(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    """Both command lines run in this process (tests/conftest.py run_app: the same main, exit status and output)."""
    skip_drawing(monkeypatch)  # neither looks at its pictures (tests/no_drawing.py)
    run_dir = tmp_path / "run"
    where = [f"hydra.run.dir={run_dir}", f"paths.cache_dir={shared_cache}"]
    failed = run_app("gaitgraph.train", [*TINY, *EXPLODE, *where])
    assert failed.returncode == 2, failed.stderr[-3000:]
    assert "Traceback" not in failed.stderr
    lines = failed.stderr.splitlines()
    said = next(line for line in lines if line.startswith("training diverged:"))
    command = lines[lines.index(said) + 1].removeprefix("  resume with: ")
    assert "the gradient norm became" in said and "at step 4 " in said and "that step was not applied" in said
    kept = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert kept["step"] == 3 and "(step 3)" in said and non_finite_keys(kept["model"]) == []
    words = shlex.split(command)
    assert words[0] == "gaitgraph-train" and f"{LR}=0.0005" in words and f"trainer.resume_changes=[{LR}]" in words

    resumed = run_app("gaitgraph.train", words[1:])  # the callback stays in the command: step 3 is past, a no-op
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    final = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert final["step"] == 8 and non_finite_keys(final["model"]) == [] and non_finite_keys(final["optimizer"]) == []
    change = next(r for r in final["history"] if "resume_changes" in r)
    assert change == {
        "resumed_at_step": 3,
        "resume_changes": {LR: [5e-3, 5e-4], "optimizer.scheduler.max_lr": [5e-3, 5e-4]},
    }
    assert final["config"]["optimizer"]["optimizer"]["lr"] == 5e-4  # a later resume needs no change named
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert change in metrics["history"]  # the run says it was changed mid-way
