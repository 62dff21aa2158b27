"""Every option of every config group composes, instantiates where it names a class, and prints; every recipe
passes preflight (gaitgraph/engine/preflight.py) and every model option's full-size network builds on the meta
device. Each option is composed once for the module (tests/composed.py)."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import get_object, instantiate
from omegaconf import OmegaConf

from gaitgraph.engine import preflight as preflight_module
from gaitgraph.engine.preflight import meta_model, preflight

from .composed import Composed
from .conftest import config_options, run_app

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


@pytest.fixture(scope="module")
def composed() -> Composed:
    """Each option's config, Hydra's node included, composed once and shared by the tests below."""
    return Composed(return_hydra_config=True)


def test_every_design_group_has_an_option():
    for group in GROUPS:
        assert config_options(group), f"conf/{group}/ has no option"


@pytest.mark.parametrize(("group", "option"), CASES, ids=[f"{g}={o}" for g, o in CASES])
def test_option_composes(composed: Composed, group: str, option: str):
    cfg = composed([f"{group}={option}"])
    assert cfg.dataset.name and cfg.model and cfg.trainer.epochs > 0
    for target in _targets(OmegaConf.to_container(cfg, resolve=False)):
        assert get_object(target) is not None, f"{group}={option}: _target_ {target} does not exist"


@pytest.mark.parametrize("option", config_options("keypoints"))
def test_keypoints_instantiate(composed: Composed, option: str):
    skeleton = instantiate(composed([f"keypoints={option}"]).keypoints)
    assert skeleton.num_joints in (17, 18)
    assert skeleton.flip_idx[skeleton.flip_idx[3]] == 3


@pytest.mark.parametrize("option", config_options("model"))
def test_every_model_option_builds_full_size_on_the_meta_device(
    composed: Composed, option: str, monkeypatch: pytest.MonkeyPatch
):
    """tests/test_options.py trains narrowed zoo models; here each option's own widths build, allocating nothing,
    and pass preflight (whose network is the one looked at: built once)."""
    cfg = composed([f"model={option}"])
    if cfg.model.get("keypoints") == "openpose18":
        cfg = composed([f"model={option}", "keypoints=openpose"])
    built = []
    monkeypatch.setattr(preflight_module, "meta_model", lambda *args: built.append(meta_model(*args)) or built[-1])
    monkeypatch.setattr(preflight_module, "_passed", None)  # a check is skipped for the last config that passed
    preflight(cfg)
    (network,) = built
    on_host = sum(p.numel() for p in network.parameters() if p.device != torch.device("meta"))
    assert on_host * 10 < sum(p.numel() for p in network.parameters()), "only the graph's small constants allocate"


@pytest.mark.parametrize("option", config_options("experiment"))
def test_preflight_of_every_recipe_passes(composed: Composed, option: str):
    """Every experiment's composed config passes (the runs themselves: tests/test_options.py)."""
    preflight(composed([f"experiment={option}"]))


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
