"""Every option of every config group composes, instantiates where it names a class, and prints."""

from __future__ import annotations

import pytest
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from .conftest import compose_train, config_options, run_app

GROUPS = [
    "dataset",
    "keypoints",
    "model",
    "loss",
    "augmentation",
    "optimizer",
    "trainer",
    "logger",
    "hparams_search",
    "experiment",
    "debug",
    "paths",
    "callbacks",
]
CASES = [(g, o) for g in GROUPS for o in config_options(g)]


def _targets(node) -> list[str]:
    """Every `_target_` in a config container, outside Hydra's own node."""
    if isinstance(node, dict):
        found = [node["_target_"]] if "_target_" in node else []
        return found + [t for k, v in node.items() if k != "hydra" for t in _targets(v)]
    if isinstance(node, list):
        return [t for v in node for t in _targets(v)]
    return []


def test_every_design_group_has_an_option():
    for group in GROUPS:
        assert config_options(group), f"conf/{group}/ has no option"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes(group: str, option: str):
    cfg = compose_train([f"{group}={option}"], return_hydra_config=True)
    assert cfg.dataset.name and cfg.model and cfg.trainer.epochs > 0
    for target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        assert get_object(target) is not None, f"{group}={option}: _target_ {target} does not exist"


@pytest.mark.parametrize("option", config_options("keypoints"))
def test_keypoints_instantiate(option: str):
    skeleton = instantiate(compose_train([f"keypoints={option}"]).keypoints)
    assert skeleton.num_joints in (17, 18)
    assert skeleton.flip_idx[skeleton.flip_idx[3]] == 3


# The compose API above covers every option; the real command line (package search path, sweeper plugin
# discovery, `--cfg job`) is checked once per kind of option: a sweep, an experiment, a debug mode, a zoo model.
# Hydra's app runs in this process (tests/conftest.py run_app); the console scripts start in test_packaging and the
# smoke tests.
CLI_CASES = [
    ("hparams_search", "optuna_small"),
    ("experiment", "gaitgraph2_oumvlp_alphapose"),
    ("debug", "profiler"),
    ("model", "gpgait"),
]


@pytest.mark.parametrize(("group", "option"), CLI_CASES, ids=[f"{g}={o}" for g, o in CLI_CASES])
def test_cfg_job_prints(group: str, option: str):
    result = run_app("gaitgraph.train", ["--cfg", "job", f"{group}={option}"])
    assert result.returncode == 0, result.stderr[-2000:]
    printed = OmegaConf.create(result.stdout)
    assert printed.dataset.name
    assert "trainer" in printed and "model" in printed
