"""The FastPoseGait zoo's recipes and model-family sweeps compose from the real config and build what they name."""

from __future__ import annotations

import json

import pytest
import torch
import yaml
from hydra.utils import instantiate

from gaitgraph.models import build_model
from gaitgraph.models.gaitgraph1 import GaitGraph1
from gaitgraph.models.gaittr import GaitTR
from gaitgraph.models.gpgait import GPGait
from gaitgraph.models.losses import TripletLoss, WeightedSum

from .conftest import compose_train, run_app
from .no_drawing import skip_drawing

#: experiment -> (model class, keypoints layout, loss target, trainer.sampler, P x K or batch size, three-phase)
RECIPES = {
    "gaitgraph1_casia_b": (GaitGraph1, "coco17", "gaitgraph.models.losses.SupConLoss", "random", 128, None),
    "gaittr_casia_b": (GaitTR, "coco17", "gaitgraph.models.losses.TripletLoss", "pk", (4, 64), True),
    "gpgait_casia_b": (GPGait, "coco17", "gaitgraph.models.losses.WeightedSum", "pk", (4, 32), True),
    "gaitgraph1_oumvlp": (GaitGraph1, "openpose18", "gaitgraph.models.losses.SupConLoss", "random", 128, None),
    "gaittr_oumvlp": (GaitTR, "openpose18", "gaitgraph.models.losses.TripletLoss", "pk", (32, 16), True),
    "gpgait_oumvlp": (GPGait, "coco17", "gaitgraph.models.losses.WeightedSum", "pk", (32, 16), True),
}
FAMILIES = ["resgcn_n21_r8", "gaitgraph1", "gaittr", "gpgait"]


@pytest.mark.parametrize("name", list(RECIPES))
def test_zoo_experiment_composes_and_builds(name):
    model_cls, layout, loss_target, sampler, batch, three_phase = RECIPES[name]
    cfg = compose_train([f"experiment={name}"])
    skeleton = instantiate(cfg.keypoints)
    assert skeleton.layout == layout
    assert isinstance(build_model(cfg.model, skeleton), model_cls)
    assert cfg.loss._target_ == loss_target
    assert (
        cfg.optimizer.optimizer._target_ == "torch.optim.Adam"
        and cfg.optimizer.scheduler.get("three_phase") == three_phase
    )
    assert cfg.trainer.sampler == sampler and cfg.tta is False
    assert (cfg.trainer.pk.p, cfg.trainer.pk.k) == batch if sampler == "pk" else cfg.trainer.batch_size == batch
    if name.startswith("gpgait"):
        loss = instantiate(cfg.loss)
        assert isinstance(loss, WeightedSum) and loss.weights["softmax"] == (0.5 if "oumvlp" in name else 1.0)


@pytest.mark.parametrize("model", FAMILIES)
def test_each_family_of_a_model_sweep_trains_a_step(model):
    """What one trial of ``-m model=resgcn_n21_r8,gaitgraph1,gaittr,gpgait`` builds, on the default keypoints."""
    cfg = compose_train([f"model={model}"])
    skeleton = instantiate(cfg.keypoints)
    net = build_model(cfg.model, skeleton)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    poses = torch.rand(8, 16, skeleton.num_joints, 3) * torch.tensor([320.0, 240.0, 1.0])
    before = [p.detach().clone() for p in net.parameters()]
    loss = TripletLoss(0.3)(net(net.input_features(poses)), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3]))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss) and any(not torch.equal(a, b) for a, b in zip(before, net.parameters()))


@pytest.mark.slow
def test_model_family_sweep_runs(tmp_path, shared_cache, monkeypatch):
    """``-m model=gaitgraph1,gaittr``: a multirun over model families, each job building its own family and
    training, validating and testing it under ``loss=triplet``. Two families show the multirun; the README's command
    names four, and each family's run is elsewhere: resgcn_n21_r8 (the default) end to end in every trial of
    tests/test_sweep.py, gaittr and GPGait as their recipes train them in tests/test_options.py (gaittr under
    triplet, GPGait's part embeddings under triplet + softmax, evaluated end to end), and every family's triplet
    step in test_each_family_of_a_model_sweep_trains_a_step. These two are the cheapest: a GPGait job cost as much
    as both (4 CPU-s: 3.7 M parameters, 120 MB of checkpoints a run).

    One step of 16 windows of 8 frames each, and figures built but not drawn (tests/evaluation/test_eval_plots.py
    checks them)."""
    zoo = ["gaitgraph1", "gaittr"]
    skip_drawing(monkeypatch)
    tiny = [
        "trainer.epochs=1",
        "trainer.batch_size=16",
        "trainer.limit_batches=1",
        "dataset.sequence_length=8",
        "dataset.split.train_subjects=[0,1]",
        "dataset.split.val_subjects=[4]",
        "dataset.split.test_subjects=[6]",
        "baseline=false",
        "trainer.num_threads=1",
        "trainer.device=cpu",
        "logger=none",
    ]
    result = run_app(
        "gaitgraph.train",
        [
            "-m",
            f"model={','.join(zoo)}",
            "loss=triplet",
            *tiny,
            f"paths.output_root={tmp_path}/outputs",
            f"paths.cache_dir={shared_cache}",
        ],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for i, model in enumerate(zoo):
        assert f"#{i} : model={model}" in result.stdout + result.stderr
    jobs = sorted((tmp_path / "outputs" / "multirun").glob("*/*/[0-9]"), key=lambda p: int(p.name))
    assert len(jobs) == len(zoo)
    for job, model in zip(jobs, zoo):
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["metric"] == metrics["val"]["psymo10"]["mean_rank1"], "the objective is the validation score"
        assert set(metrics["test"]) == {"psymo10"} and metrics["history"][0]["train/loss_epoch"] > 0
        assert yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())[0] == f"model={model}"
