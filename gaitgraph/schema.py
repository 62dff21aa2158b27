"""The typed schema of the configuration and the checks that run before any work.

The trainer group's schema is a dataclass, registered in Hydra's ConfigStore (``trainer/schema``) by
conf/__init__.py where the configs are composed, and used as the base of every ``conf/trainer`` option, so a wrong
type (``trainer.epochs=abc``) or a key that does not exist fails while Hydra composes. :func:`validate` then
checks what types cannot say -- ranges, choices, names used in paths, keys added with ``+`` -- and raises a
:class:`~gaitgraph.errors.ConfigError` naming the key, the value and what is allowed, before any data is read.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import get_object
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, ValidationError

from gaitgraph.errors import ConfigError


@dataclass
class PkSchema:
    p: int = MISSING  # subjects per batch
    k: int = MISSING  # sequences per subject


@dataclass
class SwaSchema:
    enabled: bool = MISSING
    start_fraction: float = MISSING
    lr: float | None = MISSING
    anneal_epochs: int = MISSING


@dataclass
class MemorySchema:
    guard: bool = MISSING  # estimate peak training memory before the first step and refuse what cannot fit
    limit_gb: float | None = MISSING  # the memory to plan for; null = what the machine (or GPU) has free


@dataclass
class TrainerSchema:
    """``trainer`` keys and their types; the values (and what each means) are conf/trainer/default.yaml's."""

    epochs: int = MISSING
    batch_size: int = MISSING
    seed: int = MISSING
    deterministic: bool = MISSING
    device: str = MISSING
    num_threads: Any = MISSING  # auto | N | null (cores shared out between ranks and side-by-side trials)
    grad_clip: float | None = MISSING
    grad_spike_factor: float | None = MISSING  # a gradient norm this many times the recent median is divergence
    val_every: int = MISSING
    eval_batch_size: int = MISSING
    drop_last: bool = MISSING
    resume: str | None = MISSING
    resume_changes: list[str] = MISSING  # recipe keys a resume may change (RESUME_CHANGES), e.g. after a divergence
    overwrite: bool = MISSING
    checkpoint_every_steps: int | None = MISSING
    sampler: str = MISSING
    pk: PkSchema = field(default_factory=PkSchema)
    devices: int = MISSING
    sync_bn: bool = MISSING
    amp: Any = MISSING  # auto | true | false
    compile: bool = MISSING  # torch.compile the forward network
    amp_dtype: str = MISSING
    selection: str = MISSING
    swa: SwaSchema = field(default_factory=SwaSchema)
    recompute: Any = MISSING  # true | false | partial | auto (the least the memory guard finds fits)
    host_malloc: Any = MISSING  # auto (the model family's policy) | null (glibc's own) | a mapping (host_malloc.KEYS)
    memory: MemorySchema = field(default_factory=MemorySchema)
    limit_batches: int | None = MISSING  # at most this many batches per epoch (debug=limit)
    overfit_batches: int | None = MISSING  # repeat the same first batches every epoch (debug=overfit)


#: Recipe keys that ``trainer.resume_changes`` may name: what helps a diverged run go on (docs/design.md).
RESUME_CHANGES = ("optimizer.optimizer.lr", "trainer.grad_clip")

#: Top-level keys of train.yaml besides the config groups.
ROOT_KEYS = ("task_name", "metric_protocol", "optimized_metric", "tta", "baseline", "wandb_entity")
#: Config groups of train.yaml (``local`` is the optional git-ignored one).
GROUPS = (
    "paths",
    "dataset",
    "keypoints",
    "model",
    "loss",
    "augmentation",
    "optimizer",
    "trainer",
    "logger",
    "experiment",
    "hparams_search",
    "debug",
    "callbacks",
    "local",
)
OBJECTIVES = ("val/rank1", "val/mAP", "legacy_test/rank1", "legacy_test/mAP")
PLAIN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

_AT_LEAST_1 = "an integer >= 1"
#: (key, test of the value, what is allowed); a None value passes where the key is optional.
RANGES: tuple[tuple[str, Callable[[Any], bool], str], ...] = (
    ("trainer.epochs", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.batch_size", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.devices", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.val_every", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.eval_batch_size", lambda v: v >= 1, _AT_LEAST_1),
    (
        "trainer.num_threads",
        lambda v: v is None or v == "auto" or (isinstance(v, int) and v >= 1),
        f"auto, null or {_AT_LEAST_1}",
    ),
    ("trainer.checkpoint_every_steps", lambda v: v is None or v >= 1, f"null or {_AT_LEAST_1}"),
    ("trainer.limit_batches", lambda v: v is None or v >= 1, f"null or {_AT_LEAST_1}"),
    ("trainer.overfit_batches", lambda v: v is None or v >= 1, f"null or {_AT_LEAST_1}"),
    ("trainer.grad_clip", lambda v: v is None or v > 0, "null or a number > 0"),
    ("trainer.grad_spike_factor", lambda v: v is None or v > 1, "null (off) or a factor > 1"),
    (
        "trainer.resume_changes",
        lambda v: all(k in RESUME_CHANGES for k in v),
        f"a list of the keys a resume may change: {', '.join(RESUME_CHANGES)}",
    ),
    ("trainer.pk.p", lambda v: v >= 2, "an integer >= 2 (SupCon and triplet losses need two subjects a batch)"),
    ("trainer.pk.k", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.swa.start_fraction", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("trainer.swa.anneal_epochs", lambda v: v >= 1, _AT_LEAST_1),
    ("trainer.memory.limit_gb", lambda v: v is None or v > 0, "null or a number of GB > 0"),
    ("trainer.device", lambda v: v in ("auto", "cpu") or v.startswith("cuda"), "auto, cpu or cuda"),
    ("trainer.sampler", lambda v: v in ("random", "pk"), "random or pk"),
    ("trainer.selection", lambda v: v in ("val", "legacy_test"), "val or legacy_test"),
    ("trainer.amp", lambda v: v in (True, False, "auto"), "auto, true or false"),
    ("trainer.amp_dtype", lambda v: v in ("bf16", "fp16"), "bf16 or fp16"),
    ("trainer.recompute", lambda v: v in (True, False, "partial", "auto"), "true, false, partial or auto"),
    ("optimized_metric", lambda v: v in OBJECTIVES, f"one of {', '.join(OBJECTIVES)}"),
    ("optimizer.optimizer.lr", lambda v: v is None or v > 0, "a learning rate > 0"),
    ("optimizer.optimizer.weight_decay", lambda v: v is None or v >= 0, "a weight decay >= 0"),
    ("dataset.sequence_length", lambda v: isinstance(v, int) and v >= 1, _AT_LEAST_1),
    ("task_name", lambda v: bool(PLAIN_NAME.match(str(v))), "a plain name (letters, digits, _ . -), used in paths"),
)


def validate(cfg: DictConfig) -> None:
    """Check a composed ``train`` config; raise :class:`ConfigError` for the first mistake."""
    unknown = [k for k in cfg if k not in ROOT_KEYS + GROUPS and k != "hydra"]
    if unknown:
        raise ConfigError(
            unknown[0], cfg[unknown[0]], f"a known top-level key: {_suggest(unknown[0], ROOT_KEYS + GROUPS)}"
        )
    _check_schema("trainer", cfg.trainer, TrainerSchema)
    for key, ok, allowed in RANGES:
        value = OmegaConf.select(cfg, key)
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(key, value, allowed)
    _check_probabilities(cfg.augmentation)
    for group in ("model", "loss", "augmentation", "optimizer.optimizer", "optimizer.scheduler"):
        _check_target(cfg, group)
    for name in cfg.get("callbacks") or {}:
        _check_target(cfg, f"callbacks.{name}")


def validate_sweep(cfg: DictConfig) -> None:
    """What a sweep needs on top of :func:`validate`: an objective that the dataset can measure on validation,
    unless the legacy test objective is named."""
    if cfg.optimized_metric.startswith("legacy_test"):
        return
    val = OmegaConf.select(cfg, "dataset.split.val_subjects")
    if val is not None and len(val) == 0 and not OmegaConf.select(cfg, "dataset.split.val_count"):
        raise ConfigError(
            "optimized_metric",
            cfg.optimized_metric,
            f"an objective the sweep can measure: dataset '{cfg.dataset.name}' has no validation subjects "
            "(dataset.split.val_subjects is empty)",
            hint="give it validation subjects (val_subjects, or val_count: N), or name the legacy objective "
            "optimized_metric=legacy_test/rank1 to tune on the test split knowingly",
        )


def _check_schema(group: str, node: DictConfig, schema: type) -> None:
    """Keys and types of ``node`` against the dataclass ``schema`` (catches keys added with ``+``)."""
    try:
        # A plain copy: a node that already carries the schema's type would take unknown keys along unchecked.
        OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.to_container(node, resolve=True))
    except ConfigKeyError as err:
        key = str(err.key) if err.key is not None else "?"
        known = [f.name for f in schema.__dataclass_fields__.values()]  # type: ignore[attr-defined]
        parent = f"{group}.{err.full_key.rsplit('.', 1)[0]}" if err.full_key and "." in err.full_key else group
        raise ConfigError(
            f"{parent}.{key}", OmegaConf.select(node, err.full_key or key), f"a key of {parent}: {_suggest(key, known)}"
        ) from None
    except ValidationError as err:
        raise ConfigError(
            f"{group}.{err.full_key}", err.value if hasattr(err, "value") else None, str(err).splitlines()[0]
        ) from None


def _check_probabilities(augmentation: DictConfig) -> None:
    for name, transform in (augmentation.get("transforms") or {}).items():
        p = transform.get("p") if isinstance(transform, DictConfig) else None
        if p is not None and not (isinstance(p, (int, float)) and 0 <= p <= 1):
            raise ConfigError(f"augmentation.transforms.{name}.p", p, "a probability in [0, 1]")


def _check_target(cfg: DictConfig, key: str) -> None:
    node = OmegaConf.select(cfg, key)
    target = node.get("_target_") if isinstance(node, DictConfig) else None
    if target is None:
        return
    try:
        get_object(target)
    except Exception:  # noqa: BLE001 - hydra raises ValueError or ImportError for a bad path
        raise ConfigError(f"{key}._target_", target, "an importable class or function (module.Name)") from None


def _suggest(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    return (f"did you mean '{close[0]}'? " if close else "") + f"known: {', '.join(sorted(known))}"
