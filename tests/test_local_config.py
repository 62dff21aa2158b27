"""The ``local`` config group: where it sits in the defaults order, and a W&B entity in it that applies only
to runs that log to W&B (README#configuration-groups)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra.utils import instantiate

from gaitgraph.loggers import build_logger
from gaitgraph.schema import validate
from tests.conftest import compose_train

LOCAL = """# @package _global_
trainer:
  epochs: 7
  batch_size: 24
wandb_entity: my-team
"""


@pytest.fixture
def user_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user config folder (``$GAITGRAPH_CONFIG_DIR``) whose local/default.yaml sets epochs and a W&B entity."""
    folder = tmp_path / "user_conf"
    (folder / "local").mkdir(parents=True)
    (folder / "local" / "default.yaml").write_text(LOCAL)
    monkeypatch.setenv("GAITGRAPH_CONFIG_DIR", str(folder))
    return folder


def test_local_applies_to_a_plain_run(user_local: Path) -> None:
    cfg = compose_train([])
    assert cfg.trainer.epochs == 7 and cfg.trainer.batch_size == 24
    assert cfg.logger.wandb.entity == "my-team"


def test_debug_overrides_local_and_the_command_line_overrides_both(user_local: Path) -> None:
    cfg = compose_train(["debug=fdr"])
    assert cfg.trainer.epochs == 1 and cfg.trainer.batch_size == 16  # fdr's, not local's 7 and 24
    assert compose_train(["debug=fdr", "trainer.epochs=3"]).trainer.epochs == 3


def test_local_overrides_an_experiment(user_local: Path) -> None:
    assert compose_train(["experiment=gaitgraph2_casia_b"]).trainer.batch_size == 24


@pytest.mark.parametrize("logger", ["none", "csv", "tensorboard", "[csv,tensorboard]"])
def test_a_local_wandb_entity_leaves_other_trackers_alone(user_local: Path, logger: str) -> None:
    cfg = compose_train([f"logger={logger}", "debug=fdr"])
    validate(cfg)
    assert "wandb" not in cfg.logger
    build_logger(cfg.logger)  # raised ConfigError when local set logger.wandb.entity


def test_without_local_the_entity_is_wandbs_default() -> None:
    cfg = compose_train(["logger=wandb"])
    assert cfg.logger.wandb.entity is None
    assert instantiate(cfg.logger.wandb).entity is None
