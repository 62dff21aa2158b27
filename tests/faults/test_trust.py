"""A checkpoint is data: a stored config that names anything but the platform's own classes with plain values is
refused before anything is built from it, through every entry point that restores a checkpoint (docs/trust.md).

Each chain below runs code when Hydra builds it (:func:`test_each_chain_runs_code_when_built` shows it: the
marker file appears); planted in a checkpoint, the same chain is refused and the marker never appears.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from gaitgraph import CONF_DIR
from gaitgraph.engine.restore import load_run, restore_model
from gaitgraph.engine.state import CHECKPOINT_FORMAT
from gaitgraph.engine.trust import untrusted_entry
from gaitgraph.errors import CheckpointError
from gaitgraph.evaluate import evaluate
from gaitgraph.models import build_model
from gaitgraph.predict import predict
from gaitgraph.visualize import visualize
from tests.conftest import compose_train, config_options, on_cpu, run_app
from tests.payload import CodePayload

MARKER = "ran.txt"


def _torch_load(tmp: Path) -> dict[str, Any]:
    pickled = tmp / "payload.pt"
    torch.save(CodePayload(tmp / MARKER), pickled)
    return {"_target_": "torch.load", "f": str(pickled), "weights_only": False}


def _hub_load(tmp: Path) -> dict[str, Any]:
    repo = tmp / "hub"
    repo.mkdir()
    (repo / "hubconf.py").write_text(f"open({str(tmp / MARKER)!r}, 'w').close()\n\ndef net():\n    return None\n")
    return {"_target_": "torch.hub.load", "repo_or_dir": str(repo), "model": "net", "source": "local"}


def _write_text(tmp: Path) -> dict[str, Any]:
    path = {"_target_": "pathlib.Path", "_args_": [str(tmp / MARKER)]}
    return {"_target_": "pathlib.Path.write_text", "self": path, "data": "ran"}


def _open(tmp: Path) -> dict[str, Any]:
    return {"_target_": "builtins.open", "file": str(tmp / MARKER), "mode": "w"}


def _copyfile(tmp: Path) -> dict[str, Any]:
    return {"_target_": "shutil.copyfile", "src": __file__, "dst": str(tmp / MARKER)}


def _os_system(tmp: Path) -> dict[str, Any]:
    return {"_target_": "os.system", "command": f"touch {tmp / MARKER}"}


def _partial(tmp: Path) -> dict[str, Any]:
    return {"_target_": "pathlib.Path.touch", "_partial_": True, "self": str(tmp / MARKER)}


#: Chains that run code when built (os.system is on Hydra's own blocklist; a partial runs when called).
LIVE = {"torch.load": _torch_load, "torch.hub.load": _hub_load, "Path.write_text": _write_text}
LIVE |= {"builtins.open": _open, "shutil.copyfile": _copyfile}
CHAINS: dict[str, Callable[[Path], dict[str, Any]]] = {**LIVE, "os.system": _os_system, "_partial_": _partial}


@pytest.fixture(scope="module")
def genuine(tmp_path_factory) -> dict[str, Any]:
    """A checkpoint shaped as ``TrainState.state_dict()`` writes it: real weights of the model its resolved config
    names, the config itself (what the platform stores, minus the optimizer state this test does not need)."""
    cfg = compose_train(["logger=none"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path_factory.mktemp("run"))
    config = OmegaConf.to_container(cfg, resolve=True)
    model = build_model(config["model"] | {"pretrained": None}, instantiate(cfg.keypoints))
    return {"format": CHECKPOINT_FORMAT, "model": model.state_dict(), "config": config, "epoch": 1, "step": 3}


def _plant(genuine: dict[str, Any], tmp: Path, where: tuple[str, ...], node: Any) -> Path:
    """``genuine`` with ``node`` at config key ``where``, saved to ``tmp/crafted.pt`` (loads weights-only)."""
    state = copy.deepcopy(genuine)
    parent = state["config"]
    for key in where[:-1]:
        parent = parent[key]
    parent[where[-1]] = node
    path = tmp / "crafted.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def apps(tmp_path_factory) -> dict[str, DictConfig]:
    """The evaluate / predict / visualize configs, composed once (each test sets its checkpoint and folders)."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return {name: compose(name, overrides=on_cpu([])) for name in ("evaluate", "predict", "visualize")}


def _app_cfg(apps: dict[str, DictConfig], name: str, ckpt: Path, tmp: Path, **keys: Any) -> DictConfig:
    cfg = copy.deepcopy(apps[name])
    with open_dict(cfg):
        cfg.ckpt_path = str(ckpt)
        cfg.paths.output_root, cfg.paths.cache_dir = str(tmp / "out"), str(tmp / "cache")
        cfg.paths.output_dir = str(tmp / "out" / name)
        for key, value in keys.items():
            OmegaConf.update(cfg, key, value, force_add=True)
    return cfg


ENTRIES: dict[str, Callable[..., Any]] = {
    "evaluate": lambda apps, ckpt, tmp: evaluate(_app_cfg(apps, "evaluate", ckpt, tmp), []),
    "predict": lambda apps, ckpt, tmp: predict(_app_cfg(apps, "predict", ckpt, tmp, input=str(tmp)), []),
    "visualize": lambda apps, ckpt, tmp: visualize(_app_cfg(apps, "visualize", ckpt, tmp), []),
    "restore_model": lambda apps, ckpt, tmp: restore_model(_app_cfg(apps, "evaluate", ckpt, tmp), []),
    "load_run": lambda apps, ckpt, tmp: load_run(_app_cfg(apps, "evaluate", ckpt, tmp), []),
}


@pytest.mark.parametrize("chain", LIVE)
def test_each_chain_runs_code_when_built(chain: str, tmp_path: Path) -> None:
    instantiate(CHAINS[chain](tmp_path))
    assert (tmp_path / MARKER).exists(), "the chain is a real one: built, it writes the marker"


#: Every chain through evaluate, and the chain the issue found (torch.load of a pickle) through every entry.
CASES = [(chain, "evaluate") for chain in CHAINS] + [("torch.load", entry) for entry in ENTRIES if entry != "evaluate"]


@pytest.mark.parametrize(("chain", "entry"), CASES)
def test_a_chain_in_keypoints_extra_bone_is_refused(
    genuine: dict[str, Any], apps: dict[str, DictConfig], tmp_path: Path, chain: str, entry: str
) -> None:
    ckpt = _plant(genuine, tmp_path, ("keypoints", "extra_bone"), CHAINS[chain](tmp_path))
    with pytest.raises(CheckpointError, match=r"config\.keypoints\.extra_bone") as err:
        ENTRIES[entry](apps, ckpt, tmp_path)
    assert not (tmp_path / MARKER).exists()
    assert str(ckpt) in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("where", "node", "named"),
    [
        (("model", "_target_"), "builtins.open", "config.model._target_"),
        (("model", "_target_"), "gaitgraph.utils.os.system", "config.model._target_"),  # reached through a module
        (("model", "_target_"), "gaitgraph.models.losses.SupConLoss", "config.model._target_"),  # not a model
        (("keypoints", "_target_"), "gaitgraph.models.instantiate", "config.keypoints._target_"),
        (("dataset", "reader", "_target_"), "shutil.rmtree", "config.dataset.reader._target_"),
        (("dataset", "reader", "root"), "CHAIN", "config.dataset.reader.root._target_"),
        (("model", "structure"), "CHAIN", "config.model.structure._target_"),
        (("keypoints", "_partial_"), True, "config.keypoints._partial_"),
        (("model", "_args_"), ["x"], "config.model._args_"),
        (("model", "_recursive_"), False, "config.model._recursive_"),
        (("dataset", "name"), "${oc.env:HOME}", "config.dataset.name"),
    ],
)
def test_foreign_targets_hydra_keys_and_interpolations_are_refused(
    genuine: dict[str, Any],
    apps: dict[str, DictConfig],
    tmp_path: Path,
    where: tuple[str, ...],
    node: Any,
    named: str,
) -> None:
    ckpt = _plant(genuine, tmp_path, where, _copyfile(tmp_path) if node == "CHAIN" else node)
    with pytest.raises(CheckpointError, match=named.replace(".", r"\.")):
        ENTRIES["load_run"](apps, ckpt, tmp_path)
    assert not (tmp_path / MARKER).exists()


def test_the_genuine_checkpoint_loads_and_a_chosen_group_replaces_a_refused_one(
    genuine: dict[str, Any], apps: dict[str, DictConfig], tmp_path: Path
) -> None:
    ckpt = tmp_path / "genuine.pt"
    torch.save(genuine, ckpt)
    restored = restore_model(_app_cfg(apps, "evaluate", ckpt, tmp_path), [])
    assert restored.skeleton.layout == genuine["config"]["keypoints"]["layout"]
    assert all(torch.equal(restored.model.state_dict()[k], v) for k, v in genuine["model"].items())
    # the user's own keypoints config (chosen on the command line) is trusted; the stored chain is not read
    crafted = _plant(genuine, tmp_path, ("keypoints", "extra_bone"), _open(tmp_path))
    restore_model(_app_cfg(apps, "evaluate", crafted, tmp_path), ["keypoints=coco17"])
    assert not (tmp_path / MARKER).exists()


@pytest.mark.slow
def test_untrusted_entry_is_none_for_every_shipped_option(tmp_path: Path) -> None:
    """The check does not refuse the platform's own configs (what a genuine checkpoint stores). One composed config
    holds an option of each group: as many compositions as the longest group has options, not one per option."""
    groups = {group: config_options(group) for group in ("model", "keypoints", "dataset")}
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        for i in range(max(map(len, groups.values()))):
            chosen = {group: options[i % len(options)] for group, options in groups.items()}
            overrides = [f"{group}={option}" for group, option in chosen.items()]
            cfg = compose("train", overrides=[*overrides, f"paths.root_dir={tmp_path}"])
            for group, option in chosen.items():
                node = OmegaConf.to_container(cfg[group], resolve=True)
                assert untrusted_entry(node, (group,)) is None, f"{group}={option}"


@pytest.mark.slow
def test_the_command_line_refuses_in_one_paragraph(genuine: dict[str, Any], tmp_path: Path) -> None:
    ckpt = _plant(genuine, tmp_path, ("keypoints", "extra_bone"), _torch_load(tmp_path))
    args = [f"ckpt_path={ckpt}", f"paths.output_root={tmp_path}/out", f"hydra.run.dir={tmp_path}/r"]
    done = run_app("gaitgraph.evaluate", args, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("checkpoint error: ") and "torch.load" in lines[0], done.stderr
    assert not (tmp_path / MARKER).exists()
