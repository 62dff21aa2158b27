"""Config-only commands answer at once: the short --help page, and --help / --cfg / completion import no torch,
W&B or matplotlib (the time itself is measured by benchmarks/startup.py, never here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from gaitgraph import CONF_DIR, ROOT
from gaitgraph.usage import group_options, help_page, wants_help

from .conftest import CONSOLE_SCRIPTS

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


#: train's config-only commands, each checked.
TRAIN_ARGS = {
    "help": ["--help"],
    "cfg": ["--cfg", "job", "model=gpgait"],
    "info": ["--info", "defaults"],
    "completion": ["-sc", "query=bash"],
}
#: The other commands' --help and --cfg: the rest takes the same path through cli.entry and Hydra as train's, and
#: these two already import everything the command's module imports.
OTHER_ARGS = {"help": ["--help"], "cfg": ["--cfg", "job"]}
#: Commands whose first argument is an action before the Hydra overrides.
ACTION = {"gaitgraph.data.cache": ["build"]}
CASES = [pytest.param("gaitgraph.train", args, id=f"train-{name}") for name, args in TRAIN_ARGS.items()] + [
    pytest.param(module, args, id=f"{module.removeprefix('gaitgraph.')}-{name}")
    for module in CONSOLE_SCRIPTS.values()
    if module != "gaitgraph.train"
    for name, args in OTHER_ARGS.items()
]


@pytest.mark.parametrize(("module", "args"), CASES)
def test_config_only_commands_import_nothing_heavy(module: str, args: list[str]):
    env = {**os.environ, "COMP_LINE": "gaitgraph-train model=", "COMP_POINT": "22"}
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", module, *ACTION.get(module, []), *args],
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
        assert f"usage: python -m {module}" in done.stdout, done.stdout[:500]
    if module == "gaitgraph.train" and args == ["--help"]:
        assert "config groups" in done.stdout


def test_cache_help_without_an_action_is_its_usage(monkeypatch, capsys):
    from gaitgraph.data import cache

    monkeypatch.setattr(sys, "argv", ["gaitgraph-cache", "--help"])
    cache.main()  # returns: status 0
    assert capsys.readouterr().out.startswith("usage: python -m gaitgraph.data.cache {build|info}")
