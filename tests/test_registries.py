"""One registry per concept: a model family (its input features and recomputable blocks) and a pose format declared
in a test module work through the real entry points, touching no file of the package."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf, open_dict

from gaitgraph import ROOT
from gaitgraph.engine.budget import estimate
from gaitgraph.models.features import FEATURES, register_features
from gaitgraph.train import train

from . import toys
from .conftest import compose_train, skeleton


def test_a_features_name_is_taken_once():
    assert FEATURES["toy_xy"] is toys.toy_xy
    assert register_features("toy_xy")(toys.toy_xy) is toys.toy_xy  # the same function again is fine
    with pytest.raises(ValueError, match="input features 'toy_xy' are already registered"):
        register_features("toy_xy")(lambda poses, skeleton: poses)


@pytest.mark.slow
def test_a_model_family_from_a_test_module_trains_with_recomputation_chosen_by_the_budget(tmp_path: Path, caplog):
    """The toy family's plain step does not fit the asserted memory, its recomputed step does: the guard switches
    recomputation on, and every block runs twice per training step (forward, then again in the backward)."""
    overrides = ["debug=fdr", "logger=none", "baseline=false", f"paths.cache_dir={tmp_path}"]
    network = toys.ToyGait(skeleton("coco17"))
    est = estimate(network, 16, 16)
    assert est.activations_recomputed < est.activations
    cfg = compose_train([*overrides, f"trainer.memory.limit_gb={(est.peak(False) + est.peak(True)) / 2e9}"])
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "tests.toys.ToyGait", "width": 16, "blocks": 3})
        cfg.paths.output_dir = str(tmp_path / "run")
    before = toys.ToyBlock.calls
    with caplog.at_level(logging.WARNING, logger="gaitgraph.engine.budget"):
        train(cfg)
    assert "switched trainer.activation_checkpointing on" in caplog.text
    steps = len(json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]) * 2  # debug=fdr: 2 steps
    assert toys.ToyBlock.calls - before == 2 * 3 * steps
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert "blocks.0.conv.weight" in weights


def test_the_engine_names_no_model_family():
    """Recomputation and the memory estimate ask the model (GaitModel.recomputed_modules), so the engine imports
    nothing of the models but their base, their builder and the losses."""
    allowed = {"gaitgraph.models", "gaitgraph.models.base", "gaitgraph.models.losses"}
    for path in sorted((ROOT / "gaitgraph" / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gaitgraph.models"):
                assert node.module in allowed, f"{path.relative_to(ROOT)} imports {node.module}"
