"""Recipes against the data they run on (issue 23): the default synthetic trees hold the documented recipes, and a
recipe that a tree cannot hold is refused before the pose cache is built, in one paragraph whose overrides fit."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.data import recipe_check, synthetic
from gaitgraph.data.recipe_check import check_recipe
from gaitgraph.data.synthetic import generate_gait3d, generate_grew, generate_oumvlp
from gaitgraph.engine.build import load_splits
from gaitgraph.engine.distributed import DistContext
from gaitgraph.errors import ConfigError

from .conftest import compose_train, skeleton
from .memory_dir import scratch_in_memory


def _check(*overrides: str) -> None:
    cfg = compose_train(list(overrides))
    check_recipe(cfg.dataset, cfg.trainer)


def _refusal(*overrides: str) -> tuple[str, list[str]]:
    """The paragraph a recipe is refused with, and the overrides its hint names."""
    with pytest.raises(ConfigError) as caught:
        _check(*overrides)
    message = str(caught.value)
    assert message.count("\n") == 1 and "before the pose cache is built" in message, message
    fits = re.search(r"hint: add (.*) to fit this data", message)
    assert fits, message
    return message, fits.group(1).split()


@functools.cache
def _synthetic_defaults() -> DictConfig:
    """conf/synthetic.yaml as ``gaitgraph-synthetic`` composes it (read-only: shared by two tests)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose("synthetic")
    OmegaConf.set_readonly(cfg, True)
    return cfg


# --- (a) the default trees of gaitgraph-synthetic hold the recipes -------------------------------------------------


@pytest.mark.slow
def test_default_gait3d_and_grew_trees_hold_their_recipes(tmp_path: Path):
    defaults = _synthetic_defaults()
    generate_gait3d(tmp_path / "gait3d", **defaults.gait3d)
    generate_grew(tmp_path / "grew", **defaults.grew)
    data = f"paths.data_dir={tmp_path}"
    for name in ("gait3d", "grew"):
        cfg = compose_train([f"experiment=gaitgraph2_{name}", data])
        assert (cfg.dataset.sequence_length, cfg.trainer.batch_size) == (60, 768)  # what the trees are sized for
        check_recipe(cfg.dataset, cfg.trainer)
    # Their sweeps hold out 300 / 500 training ids, more than the trees have: the check names what fits instead.
    for name, fit in (("gait3d", 36), ("grew", 40)):
        sweep = ["hparams_search=optuna", f"experiment=gaitgraph2_{name}", data]
        _, fits = _refusal(*sweep)
        assert fits[0] == f"dataset.split.val_count={fit}" and fits[1].startswith("trainer.batch_size=")
        _check(*sweep, *fits)


@pytest.fixture
def oumvlp_default_tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The data folder of gaitgraph-synthetic's default OUMVLP-Pose tree (~26,000 files, in memory where there is
    room: tests/memory_dir.py). Its frames list no poses: the recipe check counts frame files and reads none, the
    listing is the default tree's (same names, same ID_list.csv), and writing ~26,000 poses as JSON is two thirds
    of the generation's CPU time."""
    monkeypatch.setattr(synthetic, "_person", lambda pose: None)
    with scratch_in_memory(tmp_path) as data_dir:
        generate_oumvlp(data_dir / "oumvlp", **_synthetic_defaults().oumvlp)
        yield data_dir


@pytest.mark.slow
def test_default_oumvlp_tree_holds_its_recipes_with_the_overrides_its_config_names(oumvlp_default_tree: Path):
    data = f"paths.data_dir={oumvlp_default_tree}"
    named = (CONF_DIR / "synthetic.yaml").read_text()
    for recipe in ("gaitgraph2_oumvlp_openpose", "gaittr_oumvlp", "gpgait_oumvlp", "gaitgraph1_oumvlp"):
        _, fits = _refusal(f"experiment={recipe}", data)
        assert all(f in named for f in fits), fits
        _check(f"experiment={recipe}", data, *fits)  # gaittr_oumvlp's 60-frame windows fit the walks as they are


# --- (b) a recipe the data cannot hold: refused before the build, the named overrides fit ---------------------------


def test_gait3d_recipe_on_a_tiny_tree_names_batch_and_window(tmp_path: Path):
    generate_gait3d(tmp_path / "gait3d", n_subjects=8, frames=20)
    data = f"paths.data_dir={tmp_path}"
    message, fits = _refusal("experiment=gaitgraph2_gait3d", data)
    assert message.startswith("trainer.batch_size=768: expected a recipe the data of dataset 'gait3d' at ")
    assert "dataset.sequence_length=60 needs more than its training walks of at most 24 frames" in message
    assert [f.split("=")[0] for f in fits] == ["trainer.batch_size", "dataset.sequence_length"]
    assert fits[1] == "dataset.sequence_length=24"  # frames 20 +-20 %: the longest walk
    _check("experiment=gaitgraph2_gait3d", data, *fits)


def test_oumvlp_recipes_name_the_held_out_count_and_pk(tmp_path: Path):
    # 10 subjects: ID_list.csv gives 5 to training, which cannot hold out 200.
    generate_oumvlp(tmp_path / "oumvlp", n_subjects=10, n_views=2, frames=12)
    data = f"paths.data_dir={tmp_path}"
    message, fits = _refusal("experiment=gaittr_oumvlp", data)
    assert message.startswith("dataset.split.val_count=200: expected a recipe")
    assert "dataset.split.val_count=200 needs more than its 5 training subjects" in message
    # one held out leaves 4 subjects: P x K needs P <= 4; the walks hold 9-14 frame files against 60
    assert fits[:2] == ["dataset.split.val_count=1", "trainer.pk.p=4"]
    assert fits[2].startswith("dataset.sequence_length=")
    assert 9 <= int(fits[2].split("=")[1]) <= 14
    _check("experiment=gaittr_oumvlp", data, *fits)
    _, fits = _refusal("experiment=gaitgraph2_oumvlp_openpose", data)  # random batches: 4 subjects x 2 views x 2 walks
    assert fits[:2] == ["dataset.split.val_count=1", "trainer.batch_size=16"]


def test_psymo_window_longer_than_every_walk():
    _check()  # the default run fits
    message, fits = _refusal("dataset.sequence_length=100")
    assert "training walks of at most 68 frames" in message and fits == ["dataset.sequence_length=68"]


def test_the_refusal_comes_before_the_cache_is_built(tmp_path: Path):
    generate_gait3d(tmp_path / "gait3d", n_subjects=8, frames=20)
    cache = tmp_path / "cache"
    cfg = compose_train(["experiment=gaitgraph2_gait3d", f"paths.data_dir={tmp_path}", f"paths.cache_dir={cache}"])
    with pytest.raises(ConfigError, match="before the pose cache is built"):
        load_splits(DistContext(), cfg, skeleton("coco17"))
    assert not cache.exists() or not any(cache.iterdir())


def test_walks_are_opened_only_within_the_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Past the time budget the window is not judged (the check after the build is exact); batch counts still are."""
    generate_gait3d(tmp_path / "gait3d", n_subjects=8, frames=20)
    monkeypatch.setattr(recipe_check, "PARSE_BUDGET_S", 0.0)
    _, fits = _refusal("experiment=gaitgraph2_gait3d", f"paths.data_dir={tmp_path}")
    assert [f.split("=")[0] for f in fits] == ["trainer.batch_size"]


def test_a_fitting_recipe_stops_after_the_first_folders(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A full-size dataset costs a few folder listings: the survey stops once the listing shows the recipe fits."""
    generate_gait3d(tmp_path / "gait3d", n_subjects=40, frames=20)
    visited = []
    lengths = recipe_check._sequence_lengths
    monkeypatch.setattr(recipe_check, "_sequence_lengths", lambda r, u: visited.append(u) or lengths(r, u))
    fitting = ["dataset.split.val_count=2", "trainer.batch_size=8", "dataset.sequence_length=16"]
    _check("dataset=gait3d", f"paths.data_dir={tmp_path}", *fitting)
    assert 1 <= len(visited) <= 4
