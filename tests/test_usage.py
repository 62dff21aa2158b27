"""Config-only commands answer at once: the short --help page, and --help / --cfg / completion import no torch,
W&B or matplotlib in a fresh interpreter (one runs them all one after another while none has loaded any; the time
itself is measured by benchmarks/startup.py, never here)."""

from __future__ import annotations

import json
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
#: Each case: its id and ``python -m <module> <args>``.
COMMANDS = {f"train-{name}": ("gaitgraph.train", args) for name, args in TRAIN_ARGS.items()} | {
    f"{module.removeprefix('gaitgraph.')}-{name}": (module, [*ACTION.get(module, []), *args])
    for module in CONSOLE_SCRIPTS.values()
    if module != "gaitgraph.train"
    for name, args in OTHER_ARGS.items()
}
#: Runs the commands of the JSON list argv[1] one after another in this interpreter, each as ``python -m`` would
#: (runpy, sys.argv, exit status), printing a JSON line per command with what it printed and the HEAVY modules
#: loaded after it; it stops after one that loaded any, so every command starts with none loaded.
DRIVER = """
import contextlib, io, json, runpy, sys, traceback
commands, heavy_names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for module, args in commands:
    out, err, code = io.StringIO(), io.StringIO(), 0
    sys.argv = [module, *args]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        except SystemExit as done:
            code = done.code if isinstance(done.code, int) else int(done.code is not None)
        except Exception:
            traceback.print_exc()
            code = 1
    if "hydra.core.global_hydra" in sys.modules:  # Hydra keeps its config search between apps
        sys.modules["hydra.core.global_hydra"].GlobalHydra.instance().clear()
    heavy = sorted(name for name in heavy_names if name in sys.modules)
    print(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue(), "heavy": heavy}), flush=True)
    if heavy:
        break
"""


@pytest.fixture(scope="module")
def config_only_runs() -> dict[str, dict]:
    """What each of :data:`COMMANDS` did in a fresh interpreter: one for all of them, unless one loads a heavy
    module, after which the rest start in a new one (:data:`DRIVER`)."""
    env = {**os.environ, "COMP_LINE": "gaitgraph-train model=", "COMP_POINT": "22"}
    results: dict[str, dict] = {}
    while len(results) < len(COMMANDS):
        todo = [name for name in COMMANDS if name not in results]
        commands = json.dumps([COMMANDS[name] for name in todo])
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, commands, json.dumps(HEAVY)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
        lines = done.stdout.splitlines()
        assert done.returncode == 0 and lines, done.stderr[-2000:]
        results |= {name: json.loads(line) for name, line in zip(todo, lines, strict=False)}
    return results


@pytest.mark.parametrize("name", COMMANDS)
def test_config_only_commands_import_nothing_heavy(name: str, config_only_runs: dict[str, dict]):
    (module, args), done = COMMANDS[name], config_only_runs[name]
    assert done["code"] == 0, done["stderr"][-2000:]
    assert not done["heavy"], done["heavy"]
    if "--help" in args:
        assert f"usage: python -m {module}" in done["stdout"], done["stdout"][:500]
    if module == "gaitgraph.train" and args == ["--help"]:
        assert "config groups" in done["stdout"]


def test_cache_help_without_an_action_is_its_usage(monkeypatch, capsys):
    from gaitgraph.data import cache

    monkeypatch.setattr(sys, "argv", ["gaitgraph-cache", "--help"])
    cache.main()  # returns: status 0
    assert capsys.readouterr().out.startswith("usage: python -m gaitgraph.data.cache {build|info}")
