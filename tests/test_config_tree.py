"""The composed config a run prints first (gaitgraph/cli.py print_config_tree): highlighted in a terminal, plain
where it is piped or captured, and the same tree in the run's config_tree.txt."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from gaitgraph.cli import print_config_tree

from .conftest import compose_train

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("terminal", [False, True])
def test_the_tree_is_highlighted_only_in_a_terminal(terminal: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cfg = compose_train(["debug=fdr"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    monkeypatch.delenv("NO_COLOR", raising=False)
    if terminal:
        monkeypatch.setenv("FORCE_COLOR", "1")
    else:
        monkeypatch.delenv("FORCE_COLOR", raising=False)
    printed = io.StringIO()
    with redirect_stdout(printed):
        print_config_tree(cfg, tmp_path)
    saved = (tmp_path / "config_tree.txt").read_text()
    assert bool(ANSI.search(printed.getvalue())) is terminal
    assert not ANSI.search(saved)
    for group in ("dataset", "model", "trainer", "optimizer"):
        assert re.search(rf"^\S+ {group}$", saved, flags=re.M), group
    assert f"lr: {cfg.optimizer.optimizer.lr}" in saved
    plain = ANSI.sub("", printed.getvalue())
    assert f"lr: {cfg.optimizer.optimizer.lr}" in plain
    assert [line for line in saved.splitlines() if "──" in line] == [
        line for line in plain.splitlines() if "──" in line
    ]
