"""Precision, compilation and threads of a training run on CPU: bf16 autocast through the Trainer's own step (the loss
and the divergence checks in float32), ``trainer.compile`` with checkpoints that keep the plain network's keys, and
``trainer.num_threads`` (auto shares the cores out between ranks and side-by-side trials)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn

from gaitgraph.data.batches import WindowBatches
from gaitgraph.engine import build as build_module
from gaitgraph.engine import cpu
from gaitgraph.engine.build import amp_dtype, build_precision, compile_forward, setup_process
from gaitgraph.engine.checkpoint import Checkpointer
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.state import TrainState
from gaitgraph.engine.trainer import Trainer
from gaitgraph.errors import NonFiniteError
from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.models.losses import SupConLoss
from gaitgraph.models.resgcn import ResGCN

from ..conftest import compose_train
from .conftest import coco17, gaitgraph2_augmentation, toy_poses

CPU = torch.device("cpu")


class Linear(GaitModel):
    """The smallest network the Trainer takes (compiles in seconds); ``scale`` multiplies its output."""

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__(coco17(), "gaitgraph2")
        self.fc = nn.Linear(16 * 17 * 15, 8)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> ModelOutput:
        return ModelOutput(self.fc(x.flatten(1) / 100.0) * self.scale)


class RecordingSupCon(SupConLoss):
    """SupCon that notes the dtype of each embedding it is given."""

    def __init__(self) -> None:
        super().__init__(0.01)
        self.seen: set[torch.dtype] = set()

    def forward(self, output: ModelOutput, labels: torch.Tensor) -> torch.Tensor:
        self.seen.add(output.embedding.dtype)
        return super().forward(output, labels)


def _fit(net: GaitModel, tmp_path: Path, precision_overrides: list[str], compiled: bool = False) -> Trainer:
    """Three steps of batch 32 through the Trainer as build_trainer wires it (precision and compile from config)."""
    torch.manual_seed(0)
    cfg = compose_train(["trainer.device=cpu", *precision_overrides])
    batches = WindowBatches(toy_poses(8, (12,)), 16, 32, seed=1, drop_last=True)
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    state = TrainState(net, optimizer, batches, torch.Generator().manual_seed(2), config={})
    trainer = Trainer(
        state,
        model=compile_forward(net, compiled),
        loss_fn=RecordingSupCon(),
        augment=gaitgraph2_augmentation(),
        epochs=1,
        device=CPU,
        checkpointer=Checkpointer(tmp_path / "checkpoints"),
        precision=build_precision(cfg, CPU),
    )
    trainer.fit()
    return trainer


def test_amp_setting_per_device(monkeypatch, caplog):
    monkeypatch.setattr(build_module, "cpu_has_bf16", lambda: True)
    assert amp_dtype("auto", "bf16", CPU) is torch.bfloat16
    assert amp_dtype(True, "bf16", CPU) is torch.bfloat16
    assert amp_dtype(False, "bf16", CPU) is None
    with caplog.at_level(logging.WARNING):
        assert amp_dtype(True, "fp16", CPU) is None
    assert "fp16 is CUDA only" in caplog.text
    monkeypatch.setattr(build_module, "cpu_has_bf16", lambda: False)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert amp_dtype("auto", "bf16", CPU) is None
        assert not caplog.text  # auto falls back quietly
        assert amp_dtype(True, "bf16", CPU) is None
    assert "no native bf16" in caplog.text
    assert cpu.cpu_has_bf16() in (True, False)


def test_bf16_autocast_trains_finite_with_float32_loss(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build_module, "cpu_has_bf16", lambda: True)  # the same path on a CPU without native bf16
    net = ResGCN(coco17(), [1, 1, 1, 1], "Bottleneck", 8, 32)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    forward_dtypes = set()
    net.register_forward_hook(lambda m, i, o: forward_dtypes.add(o.embedding.dtype))
    trainer = _fit(net, tmp_path, ["trainer.amp=auto"])
    assert trainer.precision.dtype is torch.bfloat16 and trainer.precision.scaler is None
    assert forward_dtypes == {torch.bfloat16}  # the forward ran under autocast
    # SupCon sees float32 (gather_output casts), so the divergence checks judge a float32 loss
    assert trainer.loss_fn.seen == {torch.float32}
    assert torch.isfinite(torch.tensor(trainer.state.history[-1]["train/loss_epoch"])) and trainer.state.step == 3
    after = net.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # weights stay float32
    assert any(not torch.equal(after[k], before[k]) for k in before if before[k].is_floating_point())


def test_non_finite_bf16_forward_stops_before_the_step(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(build_module, "cpu_has_bf16", lambda: True)
    net = Linear(scale=float("inf"))  # an infinite bf16 output: SupCon's float32 loss is NaN
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(NonFiniteError):
        _fit(net, tmp_path, ["trainer.amp=true"])
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())


def test_compile_trains_and_checkpoint_keeps_plain_keys(tmp_path: Path):
    net = Linear()
    plain_keys = set(net.state_dict())
    before = net.fc.weight.detach().clone()
    trainer = _fit(net, tmp_path, ["trainer.compile=true"], compiled=True)
    assert isinstance(trainer.model, torch._dynamo.eval_frame.OptimizedModule) and trainer.network is net
    assert not torch.equal(net.fc.weight, before)
    path = trainer.save_checkpoint("last.pt")  # as the Checkpointing callback writes it
    saved = torch.load(path, weights_only=True)
    assert set(saved["model"]) == plain_keys


def test_threads_setting_is_applied(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)  # the test runner's own export caps auto (below)
    try:
        setup_process(DistContext(), compose_train(["trainer.device=cpu", "trainer.num_threads=1"]))
        assert torch.get_num_threads() == 1
        monkeypatch.setattr(cpu, "usable_cores", lambda: 8)
        monkeypatch.setattr(cpu, "parallel_trials", lambda: 2)
        setup_process(DistContext(), compose_train(["trainer.device=cpu"]))  # the default: auto
        assert torch.get_num_threads() == 4
        assert cpu.thread_count("auto", local_ranks=2) == 2 and cpu.thread_count(None) is None
        monkeypatch.setattr(cpu, "parallel_trials", lambda: 16)
        assert cpu.thread_count("auto") == 1
        monkeypatch.setattr(cpu, "parallel_trials", lambda: 1)
        for exported, expected in (("3", 3), ("16", 8), ("0", 8), ("many", 8)):
            monkeypatch.setenv("OMP_NUM_THREADS", exported)
            assert cpu.thread_count("auto") == expected, exported
        assert cpu.thread_count(2) == 2  # a number on the command line beats the export
    finally:
        torch.set_num_threads(threads)
