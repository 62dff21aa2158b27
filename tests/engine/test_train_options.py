"""The trainer options end to end on PsyMo-10: SWA, legacy test-set selection, P x K batches, AMP on CPU, partial
recomputation."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from gaitgraph.engine.cpu import cpu_has_bf16
from gaitgraph.train import train

from ..conftest import compose_train


@pytest.mark.slow
def test_swa_legacy_selection_pk_amp_and_partial_recomputation_on_cpu(tmp_path: Path, shared_cache: Path, caplog):
    cfg = compose_train(
        [
            "trainer.epochs=2",
            "dataset.sequence_length=16",
            "trainer.num_threads=1",
            "logger=none",
            "baseline=false",
            "optimizer=sgd_cosine",
            "optimizer.optimizer.lr=0.01",
            "trainer.sampler=pk",
            "trainer.pk.p=4",
            "trainer.pk.k=4",
            "trainer.swa.enabled=true",
            "trainer.swa.start_fraction=0.5",
            "trainer.selection=legacy_test",
            "trainer.val_every=1",
            "trainer.amp=true",
            "trainer.recompute=partial",
            f"paths.cache_dir={shared_cache}",
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    with caplog.at_level(logging.WARNING):
        value = train(cfg)
    assert "SELECTED ON THE TEST SET" in caplog.text
    assert cpu_has_bf16() or "no native bf16" in caplog.text  # bf16 autocast where the CPU has it, else float32
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["metric"] * 100 == pytest.approx(value) and metrics["selection"] == "legacy_test"
    assert all("test_selection/rank1" in h for h in metrics["history"])
    last = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=True)
    best = torch.load(tmp_path / "checkpoints" / "best.pt", weights_only=True)
    swa = last["callbacks"]["averaging"]
    assert swa["applied"] and int(swa["averaged"]["n_averaged"]) == 1  # epoch 2 of 2
    # The averaged model (BN statistics recomputed) is what is saved as best and evaluated.
    averaged = {k.removeprefix("module."): v for k, v in swa["averaged"].items() if k.startswith("module.")}
    for k, v in best["model"].items():
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            assert torch.equal(v, averaged[k]), k
    assert last["step"] == 2 * 12  # 192 sequences / (4 x 4) per batch
