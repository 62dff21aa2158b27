"""Restore a trained run for inference: read a checkpoint, rebuild its model with the stored config and weights,
and load the test split it is scored on (used by ``gaitgraph.evaluate``, ``gaitgraph.visualize`` and
``gaitgraph.predict``).

The model, keypoints and dataset configs come from the checkpoint's stored (resolved) config, so a checkpoint is
evaluated exactly as it was trained. On the command line, choosing a group (``dataset=casia_b``) replaces the
stored config by the local one; editing keys (``dataset.sequence_length=60``) edits the stored one.

A stored config is data, not code: it is checked (:mod:`gaitgraph.engine.trust`) before anything is built from
it, so a crafted checkpoint cannot make the platform build a callable of its choice (docs/trust.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf

from gaitgraph.data.cache import load_poses
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.splits import resolve_split, split_by_subjects
from gaitgraph.engine.cpu import apply_threads
from gaitgraph.engine.distributed import resolve_device
from gaitgraph.engine.trust import check_stored_config
from gaitgraph.errors import CheckpointError, ConfigError, short_repr
from gaitgraph.models import build_model
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import build, load_checkpoint

#: Config groups taken from the checkpoint unless the command line chooses or edits them.
STORED_GROUPS = ("model", "keypoints", "dataset")
_REQUIRED_KEYS = ("model", "config")


def read_checkpoint(path: str | Path | None) -> dict[str, Any]:
    """A ``gaitgraph.train`` checkpoint (``model`` state_dict + resolved ``config``), loaded weights-only on CPU."""
    if path is None:
        raise ConfigError(
            "ckpt_path", None, "a checkpoint file, e.g. ckpt_path=outputs/<date>/<time>/checkpoints/best.pt"
        )
    path = Path(path).expanduser()
    state = load_checkpoint(path)
    if any(k not in state for k in _REQUIRED_KEYS):
        raise CheckpointError(
            f"ckpt_path {path}: expected a gaitgraph.train checkpoint, a dict with keys "
            f"{list(_REQUIRED_KEYS)}; found keys {short_repr(sorted(state))}"
        )
    stored = state["config"]
    if not isinstance(stored, dict):
        raise CheckpointError(f"ckpt_path {path}: its stored config is a {type(stored).__name__}, not a dict")
    missing = [g for g in STORED_GROUPS if not isinstance(stored.get(g), dict)]
    if missing:
        raise CheckpointError(f"ckpt_path {path}: its stored config lacks the groups {missing}")
    return state


def effective_group(
    group: str, composed: DictConfig, stored: dict[str, Any], overrides: Sequence[str], source: str = "checkpoint"
) -> DictConfig:
    """The config of ``group`` to use: the stored one, unless the command line chose (``group=x``) or edited
    (``group.key=v``) it; an edit takes its value from the composed config and applies it to the stored one.

    The stored one is checked first (:func:`~gaitgraph.engine.trust.check_stored_config`, a CheckpointError
    naming ``source`` and the key); a group chosen on the command line is the user's own and is not."""
    keys = [o.key_or_group for o in OverridesParser.create().parse_overrides(list(overrides))]
    if group in keys:
        return composed[group]
    check_stored_config(stored[group], (group,), source)
    out = OmegaConf.create(stored[group])
    for key in keys:
        if key.startswith(f"{group}."):
            sub = key[len(group) + 1 :]
            OmegaConf.update(out, sub, OmegaConf.select(composed[group], sub), force_add=True)
    return out


@dataclass
class RestoredModel:
    """A checkpoint's model on its device, with the configs (``model``, ``keypoints``, ``dataset``) it runs with."""

    model: torch.nn.Module
    skeleton: Skeleton
    groups: dict[str, DictConfig]
    device: torch.device
    state: dict[str, Any]


@dataclass
class LoadedRun:
    """A restored model with the test split it is evaluated on."""

    model: torch.nn.Module
    skeleton: Skeleton
    model_cfg: DictConfig
    dataset_cfg: DictConfig
    test: PoseSet
    device: torch.device
    state: dict[str, Any]


def restore_model(cfg: DictConfig, overrides: Sequence[str] | None = None) -> RestoredModel:
    """Read ``cfg.ckpt_path`` and build its model with the stored config and weights, on ``trainer.device``.

    ``overrides``: the command-line overrides (default: those of the running Hydra app, none under compose);
    a group they choose or edit replaces or edits the stored one (:func:`effective_group`).
    """
    if overrides is None:
        overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    state = read_checkpoint(cfg.ckpt_path)
    # every group is checked before the first is built
    groups = {
        g: effective_group(g, cfg, state["config"], overrides, f"ckpt_path {cfg.ckpt_path}") for g in STORED_GROUPS
    }
    apply_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    skeleton = build(groups["keypoints"])
    build_cfg = OmegaConf.to_container(groups["model"], resolve=True)
    build_cfg["pretrained"] = None  # the checkpoint holds the weights
    model = build_model(build_cfg, skeleton)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"ckpt_path {cfg.ckpt_path}: its weights do not fit model {groups['model'].get('_target_')} on keypoints "
            f"'{skeleton.layout}' ({short_repr(str(err).splitlines()[0], 200)}); choose the model and keypoints "
            "it was trained with, or leave them to the checkpoint's stored config"
        ) from None
    model.to(device).eval()
    return RestoredModel(model, skeleton, groups, device, state)


def load_run(cfg: DictConfig, overrides: Sequence[str] | None = None) -> LoadedRun:
    """:func:`restore_model`, plus the test split of the (stored or chosen) dataset."""
    restored = restore_model(cfg, overrides)
    dataset_cfg = restored.groups["dataset"]
    poses = load_poses(dataset_cfg, restored.skeleton, cfg.paths.cache_dir)
    test = split_by_subjects(poses, resolve_split(dataset_cfg)).get("test")
    if test is None or len(test) == 0:
        raise ConfigError(
            "dataset.split.test_subjects",
            OmegaConf.select(dataset_cfg, "split.test_subjects"),
            f"subjects that have sequences in dataset '{dataset_cfg.name}'",
        )
    return LoadedRun(
        restored.model, restored.skeleton, restored.groups["model"], dataset_cfg, test, restored.device, restored.state
    )
