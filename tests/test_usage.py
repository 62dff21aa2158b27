"""Config-only commands answer at once: the short --help page, and --help / --cfg / completion import no torch,
W&B or matplotlib (the time itself is measured by benchmarks/startup.py, never here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gaitgraph import CONF_DIR, ROOT
from gaitgraph.usage import group_options, help_page, wants_help

HEAVY = ("torch", "wandb", "matplotlib")


def test_the_page_lists_each_group_with_the_options_on_disk():
    page = help_page(CONF_DIR, "train", "gaitgraph.train", "Train things.\n\nMore text.", ["model=gpgait"])
    assert page.startswith("Train things.\n") and "More text" not in page
    groups = group_options(CONF_DIR, "train")
    assert {"dataset", "model", "experiment", "debug", "hparams_search"} <= set(groups)
    assert "local" not in groups and "paths" not in groups
    assert groups["model"] == sorted(p.stem for p in (CONF_DIR / "model").glob("*.yaml"))
    for option in groups["model"]:
        assert option in page
    assert "examples:" in page and "model=gpgait" in page and "--hydra-help" in page


def test_help_flags():
    assert wants_help(["model=x", "--help"]) and wants_help(["-h"])
    assert not wants_help(["--hydra-help"]) and not wants_help(["--cfg", "job"])


@pytest.mark.parametrize(
    "args",
    [["--help"], ["--cfg", "job", "model=gpgait"], ["--info", "defaults"], ["-sc", "query=bash"]],
    ids=["help", "cfg", "info", "completion"],
)
def test_config_only_commands_import_nothing_heavy(args: list[str]):
    env = {**os.environ, "COMP_LINE": "gaitgraph-train model=", "COMP_POINT": "22"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "gaitgraph.train", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time")}
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    if args == ["--help"]:
        assert "usage: python -m gaitgraph.train" in done.stdout and "config groups" in done.stdout
