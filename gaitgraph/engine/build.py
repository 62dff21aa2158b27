"""Build the parts of a training run from its (validated) config: data splits, network, optimisation, the
TrainState (restored when resuming) and the Trainer with its callbacks."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from gaitgraph.data.cache import load_poses
from gaitgraph.data.datamodule import WindowBatches, resolve_split, split_by_subjects
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.recipe_check import check_recipe
from gaitgraph.engine import budget
from gaitgraph.engine.callbacks import Averaging, Callback, Checkpointing, MetricLogging, Progress, Selection
from gaitgraph.engine.checkpoint import Checkpointer, resume_checkpoint, resume_path
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.host_malloc import configure_malloc
from gaitgraph.engine.memory import checkpoint_activations
from gaitgraph.engine.state import TrainState
from gaitgraph.engine.swa import WeightAveraging
from gaitgraph.engine.trainer import Precision, Trainer
from gaitgraph.errors import ConfigError
from gaitgraph.models import GaitModel, build_model
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import build, seed_everything

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def setup_process(ctx: DistContext, cfg: DictConfig) -> torch.device:
    """Seeds, CPU threads (shared out between the ranks of one machine) and the allocator; returns the device."""
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    threads = cfg.trainer.num_threads or (
        max(1, (os.cpu_count() or 1) // ctx.local_world_size) if ctx.distributed else 0
    )
    if threads:
        torch.set_num_threads(threads)
    malloc = cfg.trainer.host_malloc
    configure_malloc(malloc.mmap_threshold_mb, malloc.trim_threshold_mb)
    return ctx.device(cfg.trainer.device)


@dataclass
class Splits:
    """The subject-disjoint parts of a dataset; ``selection`` is what model selection reads (val, or the test
    split under the explicitly named legacy choice), ``selection_key`` its history/logger key."""

    train: PoseSet
    val: PoseSet | None
    test: PoseSet
    selection: PoseSet | None
    selection_key: str


def load_splits(ctx: DistContext, cfg: DictConfig, skeleton: Skeleton) -> Splits:
    """The dataset's train/val/test splits (rank 0 builds the cache, the others read it afterwards)."""
    check_recipe(cfg.dataset, cfg.trainer)  # every rank, before the build: a recipe the data cannot hold ends here
    if ctx.is_main:
        poses = load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
    ctx.barrier()
    if not ctx.is_main:
        poses = load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
    parts = split_by_subjects(poses, resolve_split(cfg.dataset))
    train, test = parts["train"], parts["test"]
    val = parts.get("val") if len(parts.get("val", ())) else None
    for name, split in (("train", train), ("test", test)):
        if len(split) == 0:
            raise ConfigError(
                f"dataset.split.{name}_subjects",
                resolve_split(cfg.dataset)[f"{name}_subjects"],
                f"subjects that have sequences in dataset '{cfg.dataset.name}'",
            )
    longest = int(train.lengths.max())
    if cfg.dataset.sequence_length > longest:
        raise ConfigError(
            "dataset.sequence_length",
            cfg.dataset.sequence_length,
            f"at most {longest}, the longest training sequence of '{cfg.dataset.name}' (longer "
            "windows only repeat padded frames)",
        )
    legacy = cfg.trainer.selection == "legacy_test"
    if legacy:
        log.warning(
            "!!! trainer.selection=legacy_test: the checkpoint is SELECTED ON THE TEST SET (GaitGraph/"
            "GaitGraph2 behaviour). Its test numbers are optimistic; never compare them with val-selected runs."
        )
    log.info(
        "data: %d train / %d val / %d test sequences (%d / %d / %d subjects)",
        len(train),
        len(val) if val else 0,
        len(test),
        *(_subjects(s) for s in (train, val, test)),
    )
    return Splits(train, val, test, test if legacy else val, "test_selection/rank1" if legacy else "val/rank1")


def _subjects(split: PoseSet | None) -> int:
    return 0 if split is None else int(split.meta["subject"].nunique())


def build_network(
    cfg: DictConfig, skeleton: Skeleton, device: torch.device, batch_per_rank: int, local_ranks: int
) -> GaitModel:
    """The model on ``device``, with activation recomputation when asked or when the memory guard needs it."""
    network = build_model(cfg.model, skeleton)
    setting = cfg.trainer.activation_checkpointing
    recompute = setting is True
    memory = cfg.trainer.memory
    if memory.guard:
        estimate = budget.estimate(network, batch_per_rank, cfg.dataset.sequence_length)
        limit = memory.limit_gb
        room = int(limit * 1e9) if limit is not None else budget.available_bytes(device) // local_ranks
        what = (
            f"training {cfg.model._target_.rsplit('.', 1)[-1]} on batches of {batch_per_rank} x "
            f"{cfg.dataset.sequence_length} frames on {device.type}"
        )
        can_recompute = bool(network.recomputed_modules())
        recompute = budget.choose_recompute(setting, estimate, room, can_recompute=can_recompute, what=what)
    network = network.to(device)
    if recompute and checkpoint_activations(network) == 0:
        log.warning(
            "trainer.activation_checkpointing: %s has no recomputable module; training it plainly",
            type(network).__name__,
        )
    return network


def build_optimization(cfg: DictConfig, network: GaitModel, steps_per_epoch: int) -> tuple[Any, Any]:
    """The optimizer and its learning-rate schedule (None without one), sized for the whole run."""
    optimizer = build(cfg.optimizer.optimizer)(params=network.parameters())
    if not cfg.optimizer.get("scheduler"):
        return optimizer, None
    per_step = cfg.optimizer.interval == "step"
    total = cfg.trainer.epochs * (steps_per_epoch if per_step else 1)
    try:
        return optimizer, build(cfg.optimizer.scheduler)(optimizer, total_steps=total)
    except ZeroDivisionError:  # OneCycleLR: a phase of zero steps (pct_start * total_steps == 1)
        raise ConfigError(
            "optimizer.scheduler",
            OmegaConf.to_container(cfg.optimizer.scheduler),
            f"a schedule whose phases each get steps; this run has {total} scheduler steps",
            hint="more steps (trainer.epochs, trainer.limit_batches) or another optimizer.scheduler.pct_start",
        ) from None


def build_precision(cfg: DictConfig, device: torch.device) -> Precision:
    """Mixed precision on CUDA when asked (fp16 with a GradScaler); float32 elsewhere, said once."""
    if not cfg.trainer.amp:
        return Precision()
    if device.type != "cuda":
        log.warning("trainer.amp=true is ignored on CPU: training in float32")
        return Precision()
    scaler = torch.amp.GradScaler("cuda") if cfg.trainer.amp_dtype == "fp16" else None
    return Precision(AMP_DTYPES[cfg.trainer.amp_dtype], scaler)


def build_callbacks(
    cfg: DictConfig,
    ctx: DistContext,
    splits: Splits,
    optimizer: Any,
    network: GaitModel,
    logger: Any,
    score: Callable[[GaitModel, PoseSet, str], float],
) -> dict[str, Callback]:
    """The run's callbacks by name, in call order: averaging, selection, logging, checkpoints, progress, then
    the user's own (``callbacks`` config node, ``_target_`` each)."""
    trainer_cfg = cfg.trainer
    callbacks: dict[str, Callback] = {}
    swa = trainer_cfg.swa
    if swa.enabled:
        averaging = WeightAveraging(network, trainer_cfg.epochs, swa.start_fraction, swa.lr, swa.anneal_epochs)
        callbacks["averaging"] = Averaging(averaging, optimizer)
    if splits.selection is not None:
        selection = splits.selection
        name = "test" if splits.selection is splits.test else "val"
        callbacks["selection"] = Selection(
            lambda net: score(net, selection, name),
            trainer_cfg.val_every,
            splits.selection_key,
            save_best=not swa.enabled,
        )
    callbacks["logging"] = MetricLogging(logger)
    callbacks["checkpointing"] = Checkpointing(
        trainer_cfg.checkpoint_every_steps, final_is_best=splits.selection is None or swa.enabled
    )
    callbacks["progress"] = Progress(enabled=ctx.is_main)
    for name, spec in (cfg.get("callbacks") or {}).items():
        callbacks[str(name)] = build(spec)
    return callbacks


def _check_classes(network: GaitModel, train: PoseSet, dataset: str) -> None:
    """A classifier head needs one output per training subject."""
    classes, subjects = getattr(network, "num_classes", None), int(train.meta["subject"].nunique())
    if classes is not None and classes < subjects:
        raise ConfigError(
            "model.num_classes",
            classes,
            f"at least {subjects}, the training subjects of '{dataset}' (one classifier output each)",
        )


def _wrap_distributed(ctx: DistContext, network: GaitModel, device: torch.device, sync_bn: bool) -> torch.nn.Module:
    """The network itself on one process; under DDP wrapped (with SyncBatchNorm on CUDA when asked)."""
    if not ctx.distributed:
        return network
    model: torch.nn.Module = network
    if sync_bn and device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(network)  # swaps the BatchNorms in place
    elif sync_bn:
        log.warning("trainer.sync_bn=true needs CUDA (SyncBatchNorm); using per-rank BatchNorm on CPU")
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None
    )


def build_trainer(
    ctx: DistContext,
    cfg: DictConfig,
    run_dir: Path,
    splits: Splits,
    skeleton: Skeleton,
    device: torch.device,
    logger: Any,
    score: Callable[[GaitModel, PoseSet, str], float],
) -> Trainer:
    """The Trainer of this rank, restored from ``trainer.resume`` when it points at a checkpoint."""
    t = cfg.trainer
    batches = WindowBatches(
        splits.train,
        cfg.dataset.sequence_length,
        t.batch_size,
        t.seed,
        t.drop_last,
        sampler=t.sampler,
        pk=(t.pk.p, t.pk.k),
        limit=t.limit_batches,
        fixed=t.overfit_batches is not None,
    )
    per_rank = -(-batches.batch_size // ctx.world_size)
    network = build_network(cfg, skeleton, device, per_rank, ctx.local_world_size)
    _check_classes(network, splits.train, cfg.dataset.name)
    optimizer, scheduler = build_optimization(cfg, network, len(batches))
    precision = build_precision(cfg, device)
    augment_rng = torch.Generator(device=device).manual_seed(int(t.seed) + 1)
    callbacks = build_callbacks(cfg, ctx, splits, optimizer, network, logger, score)
    config = OmegaConf.to_container(cfg, resolve=True)
    state = TrainState(network, optimizer, batches, augment_rng, config, scheduler, precision.scaler, callbacks)
    resume = resume_path(t.resume, run_dir)
    if resume is not None:
        state.load_state_dict(resume_checkpoint(resume, config))
    return Trainer(
        state,
        model=_wrap_distributed(ctx, network, device, t.sync_bn),
        loss_fn=build(cfg.loss),
        augment=build(cfg.augmentation),
        epochs=t.epochs,
        device=device,
        checkpointer=Checkpointer(run_dir / "checkpoints"),
        callbacks=list(callbacks.values()),
        ctx=ctx,
        precision=precision,
        grad_clip=t.grad_clip,
        step_per_batch=cfg.optimizer.get("interval", "step") == "step",
    )
