"""``import gaitgraph`` changes nothing in the process; the commands set the environment torch's libraries read
before torch loads (gaitgraph/process_env.py), and the configs bring their resolvers and schema where they are
composed (conf/__init__.py). Subprocesses: what a fresh process sees at import is the point."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gaitgraph.process_env import DEFAULTS

import pytest

from gaitgraph import ROOT


def _python(code: str, **env: str) -> dict:
    clean = {k: v for k, v in os.environ.items() if k not in DEFAULTS}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**clean, **env}, cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_the_package_leaves_the_process_alone_and_composing_registers_what_configs_need():
    seen = _python(
        """
import json, os, sys
before = dict(os.environ)
import gaitgraph
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
out = {
    "env_changed": sorted(k for k in set(os.environ) | set(before) if os.environ.get(k) != before.get(k)),
    "resolvers": [r for r in ("gg.root", "gg.user_conf", "gg.dataset_root", "gg.if_sweep")
                  if OmegaConf.has_resolver(r)],
    "schema": "schema.yaml" in (ConfigStore.instance().repo.get("trainer") or {}),
    "conf_imported": "gaitgraph.conf" in sys.modules,
}
from hydra import compose, initialize_config_module  # what every command does: hydra.main on pkg://gaitgraph.conf
with initialize_config_module("gaitgraph.conf", version_base="1.3"):
    cfg = compose("train", overrides=["trainer.device=cpu"])
out["root_dir"] = cfg.paths.root_dir
out["schema_after"] = "schema.yaml" in ConfigStore.instance().repo["trainer"]
print(json.dumps(out))
"""
    )
    assert seen["env_changed"] == [] and seen["resolvers"] == [] and seen["schema"] is False
    assert seen["conf_imported"] is False
    assert seen["root_dir"] == os.environ.get("GAITGRAPH_ROOT", str(ROOT)) and seen["schema_after"] is True


# Every console script's module (pyproject [project.scripts]) and the ones run with python -m.
COMMANDS = ["gaitgraph.train", "gaitgraph.evaluate", "gaitgraph.predict", "gaitgraph.visualize", "gaitgraph.data.cache"]


@pytest.mark.slow
@pytest.mark.parametrize("module", COMMANDS)
def test_a_command_sets_the_environment_before_torch_loads(module: str):
    """A finder on sys.meta_path records the environment at the moment torch is first imported, if the module
    imports it; either way the variables are set once the command's module is imported."""
    seen = _python(
        f"""
import json, os, sys
at_torch = {{}}
class Watch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" and not at_torch:
            at_torch.update({{k: os.environ.get(k) for k in {sorted(DEFAULTS)!r}}})
        return None
sys.meta_path.insert(0, Watch())
import {module}
print(json.dumps({{"at_torch": at_torch, "after": {{k: os.environ.get(k) for k in {sorted(DEFAULTS)!r}}}}}))
""",
        THP_MEM_ALLOC_ENABLE="0",  # exported by the user: kept
    )
    expected = {**DEFAULTS, "THP_MEM_ALLOC_ENABLE": "0"}
    assert seen["after"] == expected
    assert seen["at_torch"] in ({}, expected)


def _rank_view(ctx, probe: str) -> dict:
    """What a DDP rank sees: its environment, who forked it, its SIGTERM disposition and mask."""
    import signal

    return {
        "env": dict(os.environ),
        "ppid": os.getppid(),
        "cwd": os.getcwd(),
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "sigterm_blocked": signal.SIGTERM in signal.pthread_sigmask(signal.SIG_BLOCK, []),
        "probe": probe,
    }


@pytest.mark.slow
def test_ddp_ranks_see_the_parents_environment_of_each_launch(tmp_path, monkeypatch: pytest.MonkeyPatch):
    """The ranks fork from a server that started at the first launch; each launch hands them this process's
    environment of that moment. A SIGTERM to the server (a scheduler signals every process of a job) leaves it
    serving, and the ranks take SIGTERM by default."""
    import signal

    from gaitgraph.engine.distributed import spawn

    added = {"MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"}
    monkeypatch.chdir(tmp_path)
    seen = []
    for value in ("first", "second"):
        monkeypatch.setenv("GAITGRAPH_TEST_PROBE", value)
        monkeypatch.delenv("GAITGRAPH_TEST_GONE", raising=False)
        view = spawn(_rank_view, 2, "cpu", (value,), tmp_path)
        assert {k: v for k, v in view["env"].items() if k not in added} == dict(os.environ)
        assert view["cwd"] == str(tmp_path) and view["sigterm_default"] and not view["sigterm_blocked"]
        assert view["ppid"] != os.getpid()  # forked by the server, not by this process
        seen.append(view["ppid"])
        os.kill(view["ppid"], signal.SIGTERM)
        monkeypatch.setenv("GAITGRAPH_TEST_GONE", "set after the server started")
    assert seen[0] == seen[1]  # one server for both launches, and the SIGTERM did not end it


@pytest.mark.slow
def test_the_fork_servers_imports_run_no_tensor_op_and_touch_no_cuda():
    """DDP ranks fork from a server that imported ``distributed.PRELOAD``: a thread pool started there (an OpenMP
    parallel region) can hang a forked child, and CUDA queried there cannot be used in one. The check itself is
    checked: a tensor op afterwards does start threads."""
    seen = _python(
        """
import importlib, json, os
import torch
calls = []
def watch(owner, name):
    original = getattr(owner, name)
    setattr(owner, name, lambda *a, **k: (calls.append(name), original(*a, **k))[1])
for name in ("is_available", "device_count", "init", "_lazy_init", "current_device"):
    watch(torch.cuda, name)
if hasattr(torch._C, "_cuda_getDeviceCount"):
    watch(torch._C, "_cuda_getDeviceCount")
threads = lambda: len(os.listdir("/proc/self/task"))
before = threads()
from gaitgraph.engine.distributed import PRELOAD
for name in PRELOAD:
    importlib.import_module(name)
after = threads()
torch.set_num_threads(2)
torch.ones(2**23).mul_(2)
print(json.dumps({"before": before, "after": after, "op": threads(), "calls": calls}))
""",
        OMP_NUM_THREADS="2",
    )
    assert seen["calls"] == [] and seen["after"] == seen["before"] < seen["op"]
