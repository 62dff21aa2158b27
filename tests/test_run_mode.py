"""A command composes its config once (gaitgraph/run_mode.py): Hydra's extra composition that only reads
``hydra.mode`` is skipped unless something could set that mode, and then Hydra composes as before."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra._internal.hydra import Hydra
from hydra.core.hydra_config import HydraConfig

from gaitgraph import CONF_DIR, cli
from gaitgraph.run_mode import mode_may_be_configured

from .conftest import _in_process


def test_no_shipped_config_sets_the_run_mode():
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        hydra_node = doc.get("hydra") or {}
        assert "mode" not in hydra_node, f"{path} sets hydra.mode: gaitgraph/run_mode.py must compose for it"


@pytest.mark.parametrize(
    ("overrides", "argv", "local", "expected"),
    [
        (["trainer.epochs=1", "model=gaittr"], [], None, False),
        (["hydra.mode=MULTIRUN"], [], None, True),
        (["+hydra.searchpath=[file:///x]"], [], None, True),
        ([], ["--config-dir", "/x"], None, True),
        ([], ["-cd=/x"], None, True),
        ([], [], "trainer:\n  epochs: 3\n", False),
        ([], [], "hydra:\n  mode: MULTIRUN\n", True),
    ],
)
def test_what_could_set_the_mode(overrides, argv, local, expected, tmp_path: Path):
    if local is not None:
        (tmp_path / "local").mkdir()
        (tmp_path / "local" / "default.yaml").write_text(local)
    assert mode_may_be_configured(overrides, argv, [tmp_path / "local", tmp_path / "absent"]) is expected


def _task_run(tmp_path: Path, args: list[str], monkeypatch: pytest.MonkeyPatch, env: dict | None = None) -> dict:
    """Run the train config through cli.entry with a task that only records the mode; the compositions counted."""
    seen: dict = {"compositions": 0}
    compose = Hydra.compose_config

    def counted(self, *a, **kw):
        seen["compositions"] += 1
        return compose(self, *a, **kw)

    monkeypatch.setattr(Hydra, "compose_config", counted)

    def task(cfg) -> None:
        seen["mode"] = HydraConfig.get().mode.name

    tmp_path.mkdir(parents=True, exist_ok=True)
    dirs = [f"hydra.run.dir={tmp_path}/run", f"hydra.sweep.dir={tmp_path}/sweep", "trainer.device=cpu"]
    done = _in_process(cli.entry("train")(task), ["train", *dirs, *args], env, tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    return seen


def test_a_command_composes_once_and_minus_m_still_decides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert _task_run(tmp_path / "a", [], monkeypatch) == {"compositions": 1, "mode": "RUN"}
    monkeypatch.undo()
    assert _task_run(tmp_path / "b", ["-m"], monkeypatch)["mode"] == "MULTIRUN"


def test_a_users_local_config_that_sets_the_mode_still_decides_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    user = tmp_path / "user"
    (user / "local").mkdir(parents=True)
    (user / "local" / "default.yaml").write_text("# @package _global_\nhydra:\n  mode: MULTIRUN\n")
    seen = _task_run(tmp_path, [], monkeypatch, env={"GAITGRAPH_CONFIG_DIR": str(user)})
    assert seen["mode"] == "MULTIRUN" and seen["compositions"] >= 2  # Hydra's own mode composition, then the run's
