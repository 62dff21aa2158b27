"""Checks of a composed ``train`` config before any data is read (docs/design.md#configuration).

:func:`gaitgraph.schema.validate` checks types, ranges and that every ``_target_`` imports. :func:`preflight` goes
on to build what the config describes, on nothing: every ``_target_`` node's arguments are bound to its signature,
the joint layout, the network (on the meta device: no memory, no weights), the loss, the augmentation pipeline,
the optimizer and its schedule and the dataset's reader are built, and every protocol, the preprocessing and the
host-memory policy are parsed. So a wrong key or value anywhere (``+model.foo=1``,
``dataset.preprocess.normalize=zscore``, a protocol query of a column that does not exist) is one
:class:`~gaitgraph.errors.ConfigError` paragraph in the first seconds, not a traceback after the data has loaded.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import get_object
from omegaconf import DictConfig, ListConfig, OmegaConf

from gaitgraph.data.preprocess import NORMALIZATIONS
from gaitgraph.engine.host_malloc import host_memory_policy
from gaitgraph.errors import ConfigError, GaitGraphError
from gaitgraph.evaluation.pipeline import protocols_for
from gaitgraph.evaluation.protocols import SPLITS
from gaitgraph.models import NON_CONSTRUCTOR_KEYS, GaitModel, build_model
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import build

#: Steps a schedule is built for here: the real count is known only once the data is loaded.
NOMINAL_STEPS = 1000
#: Config keys that only Hydra's instantiate reads.
HYDRA_KEYS = ("_target_", "_partial_", "_convert_", "_recursive_", "_args_")
#: Keys of a group's ``_target_`` nodes that the platform reads instead of the class (a callback's switch).
PLATFORM_KEYS = {"callbacks": ("enabled",)}
#: The content of the last config that passed: a single run is checked by its Hydra callback (before Hydra writes
#: into the run folder) and again by ``train()`` (which API callers and sweep trials reach directly); the second
#: check of the same content would build everything again for nothing.
_passed: str | None = None


def preflight(cfg: DictConfig) -> None:
    """Build every part of ``cfg`` once, on nothing; raise :class:`ConfigError` naming the first wrong key."""
    global _passed
    content = _content(cfg)
    if content == _passed:
        return
    _build_all(cfg)
    _passed = content


def _content(cfg: DictConfig) -> str:
    """``cfg`` without Hydra's own node, unresolved, as text: equal text, equal check."""
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    return json.dumps(plain, sort_keys=True, default=str)


def _build_all(cfg: DictConfig) -> None:
    for key, node in target_nodes(cfg):
        check_arguments(key, node)
    skeleton = checked(cfg, "keypoints", lambda: build(cfg.keypoints))
    network = checked(cfg, "model", lambda: meta_model(cfg.model, skeleton))
    host_memory_policy(cfg.trainer, type(network))
    checked(cfg, "loss", lambda: build(cfg.loss))
    checked(cfg, "augmentation", lambda: build(cfg.augmentation))
    optimizer = checked(cfg, "optimizer.optimizer", lambda: build(cfg.optimizer.optimizer)(network.parameters()))
    if cfg.optimizer.get("scheduler"):
        checked(
            cfg, "optimizer.scheduler", lambda: build(cfg.optimizer.scheduler)(optimizer, total_steps=NOMINAL_STEPS)
        )
    checked(cfg, "dataset.reader", lambda: build(cfg.dataset.reader))
    check_dataset(cfg)


def target_nodes(node: Any, key: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every config node with a ``_target_`` (key path, node), depth first; Hydra's own node left out."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield key, node
        for name in node:
            if not key and name == "hydra":
                continue
            yield from target_nodes(node._get_node(name), f"{key}.{name}" if key else str(name))
    elif isinstance(node, ListConfig):
        for i, item in enumerate(node):
            yield from target_nodes(item, f"{key}[{i}]")


def check_arguments(key: str, node: DictConfig) -> None:
    """Every argument of ``node`` is one its ``_target_`` takes (arguments the platform adds may be missing)."""
    target = node._target_
    try:
        parameters = inspect.signature(get_object(target)).parameters
    except (TypeError, ValueError):  # a builtin without a readable signature: the build below checks it
        return
    except Exception:  # noqa: BLE001 - hydra raises ValueError or ImportError for a bad path
        raise ConfigError(f"{key}._target_", target, "an importable class or function (module.Name)") from None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    skip = NON_CONSTRUCTOR_KEYS if key == "model" else PLATFORM_KEYS.get(key.split(".", 1)[0], ())
    names = [n for n, p in parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY)]
    for arg in node:
        if arg not in HYDRA_KEYS and arg not in skip and arg not in names:
            raise ConfigError(
                f"{key}.{arg}", OmegaConf.select(node, str(arg)), f"an argument of {target}: {', '.join(names)}"
            )


def checked(cfg: DictConfig, key: str, make: Callable[[], Any]) -> Any:
    """``make()``; a value the object rejects becomes a :class:`ConfigError` on ``key`` (platform errors pass)."""
    try:
        return make()
    except GaitGraphError:
        raise
    except (InstantiationException, TypeError, ValueError, KeyError, IndexError, RuntimeError, re.error) as err:
        target = OmegaConf.select(cfg, f"{key}._target_")
        raise ConfigError(key, target, f"settings that build ({_reason(err)})") from None


def meta_model(model_cfg: DictConfig, skeleton: Skeleton) -> GaitModel:
    """The network of ``model_cfg`` on the meta device: built, shapes checked, nothing allocated or loaded."""
    plain = OmegaConf.to_container(model_cfg, resolve=True)
    plain["pretrained"] = None  # the weights load in the real build; a config without the key (a user's) is fine
    with torch.device("meta"):
        network = build_model(plain, skeleton)
    return network


def check_dataset(cfg: DictConfig) -> None:
    """The preprocessing, the evaluation window and every protocol, for each split it scores."""
    normalize = cfg.dataset.preprocess.normalize
    if normalize not in NORMALIZATIONS:
        raise ConfigError("dataset.preprocess.normalize", normalize, f"one of {', '.join(NORMALIZATIONS)}")
    length = OmegaConf.select(cfg, "dataset.eval_sequence_length")
    if length is not None and not (isinstance(length, int) and length >= 1):
        raise ConfigError("dataset.eval_sequence_length", length, "null or an integer >= 1")
    names = set()
    for split in SPLITS:
        names |= set(protocols_for(cfg.dataset, split))
    if cfg.metric_protocol is not None and cfg.metric_protocol not in names:
        raise ConfigError("metric_protocol", cfg.metric_protocol, f"null or a protocol of the dataset: {sorted(names)}")


def _reason(err: BaseException) -> str:
    """The innermost message of an error (Hydra wraps the object's own), on one line."""
    while isinstance(err, InstantiationException) and err.__cause__ is not None:
        err = err.__cause__
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return f"{type(err).__name__}: {text}"
