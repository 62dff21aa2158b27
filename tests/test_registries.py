"""One registry per concept: a model family (its input features and recomputable blocks) declared in a test module
trains through the real entry point, touching no file of the package; the pose-format registry serves the datasets
and predict alike (a toy format from a test module: tests/test_predict_families.py)."""

from __future__ import annotations

import ast
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from gaitgraph import ROOT
from gaitgraph.data import synthetic
from gaitgraph.data.formats import FORMATS, detect_format
from gaitgraph.data.preprocess import convert_layout, normalize
from gaitgraph.data.user_poses import read_input
from gaitgraph.engine.budget import estimate
from gaitgraph.models.features import FEATURES, register_features
from gaitgraph.train import train
from gaitgraph.utils import build

from . import toys
from .conftest import compose_train, config_options, skeleton


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
    cfg = compose_train([*overrides, f"trainer.memory.limit_gb={(est.peak('off') + est.peak('full')) / 2e9}"])
    with open_dict(cfg):
        cfg.model = OmegaConf.create({"_target_": "tests.toys.ToyGait", "width": 16, "blocks": 3})
        cfg.paths.output_dir = str(tmp_path / "run")
    before = toys.ToyBlock.calls
    with caplog.at_level(logging.WARNING, logger="gaitgraph.engine.budget"):
        train(cfg)
    assert "switched trainer.recompute to true" in caplog.text  # the toy declares no partial level
    steps = len(json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]) * 2  # debug=fdr: 2 steps
    assert toys.ToyBlock.calls - before == 2 * 3 * steps
    weights = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert "blocks.0.conv.weight" in weights


def test_the_engine_names_no_model_family():
    """Recomputation and the memory estimate ask the model (GaitModel.recompute_targets), so the engine imports
    nothing of the models but their base, their builder and the losses."""
    allowed = {"gaitgraph.models", "gaitgraph.models.base", "gaitgraph.models.losses"}
    for path in sorted((ROOT / "gaitgraph" / "engine").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("gaitgraph.models"):
                assert node.module in allowed, f"{path.relative_to(ROOT)} imports {node.module}"


def test_every_dataset_config_reads_a_registered_pose_format():
    """predict reads what the datasets read: each packaged dataset config names the reader of a registered format."""
    readers = {f"{fmt.reader.__module__}.{fmt.reader.__qualname__}" for fmt in FORMATS.values()}
    for option in config_options("dataset"):
        target = compose_train([f"dataset={option}"]).dataset.reader._target_
        assert target in readers, f"conf/dataset/{option}.yaml reads with {target}, which no pose format declares"


#: synthetic format -> (generator arguments of a tiny tree, keypoints option of its layout)
SYNTHETIC = {
    "casia_b": ({"n_subjects": 3, "n_views": 2, "frames": 30}, "coco17"),
    "oumvlp": ({"n_subjects": 3, "n_views": 2, "frames": 20}, "openpose"),
    "casia_b_pkl": ({"n_subjects": 3, "n_views": 2, "frames": 30}, "coco17"),
    "grew": ({"n_train": 3, "n_test": 2, "frames": 20}, "coco17"),
    "gait3d": ({"n_subjects": 4, "frames": 20}, "coco17"),
}


@pytest.mark.parametrize("name", SYNTHETIC)
def test_predict_reads_every_synthetic_format_as_its_dataset_reads_it(tmp_path: Path, name: str):
    """Each tree gaitgraph.data.synthetic writes is recognised by its format and read by predict into the same
    sequences as the dataset config's reader reads from it, preprocessed as that dataset preprocesses them."""
    kwargs, keypoints = SYNTHETIC[name]
    root = tmp_path / name
    if name == "casia_b":
        root.mkdir()
        synthetic.generate_casia_b(root / "casia-b_pose_coco.csv", **kwargs)
    else:
        getattr(synthetic, f"generate_{name}")(root, **kwargs)
    cfg = compose_train([f"dataset={name}", f"keypoints={keypoints}", f"dataset.reader.root={root}"])
    if "workers" in cfg.dataset.reader:
        cfg.dataset.reader.workers = 0  # in this process: a tiny tree
    skeleton_ = instantiate(cfg.keypoints)
    assert detect_format(root) == name
    dataset = build(cfg.dataset.reader).read()
    read = read_input(str(root), "auto", cfg.dataset, skeleton_)
    assert len(read) == len(dataset) > 0
    assert read.meta["source"].tolist() == dataset.meta["source"].tolist()
    want = normalize(convert_layout(dataset, skeleton_), skeleton_, cfg.dataset.preprocess.normalize)
    np.testing.assert_array_equal(read.frames, want.frames)
