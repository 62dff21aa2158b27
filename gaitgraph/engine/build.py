"""Build the parts of a training run from its (validated) config: data splits, network, optimisation, the
TrainState (restored when resuming) and the Trainer with its callbacks."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf

from gaitgraph.data.batches import WindowBatches
from gaitgraph.data.cache import load_poses
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.recipe_check import check_recipe
from gaitgraph.data.splits import resolve_split, split_by_subjects
from gaitgraph.engine import budget
from gaitgraph.engine.callbacks import Callback
from gaitgraph.engine.checkpoint import Checkpointer, resume_checkpoint, resume_path
from gaitgraph.engine.cpu import apply_threads, cpu_has_bf16
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.host_malloc import configure_host_memory, host_memory_policy
from gaitgraph.engine.recompute import recompute_activations
from gaitgraph.engine.state import TrainState
from gaitgraph.engine.trainer import Precision, Trainer
from gaitgraph.errors import ConfigError
from gaitgraph.models import GaitModel, build_model
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import build, seed_everything

log = logging.getLogger(__name__)

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def setup_process(ctx: DistContext, cfg: DictConfig) -> torch.device:
    """Seeds, CPU threads (shared out between the ranks of one machine) and the host-memory policy
    (``trainer.host_malloc``; ``auto``: the model family's own); returns the device."""
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    apply_threads(cfg.trainer.num_threads, ctx.local_world_size)
    configure_host_memory(host_memory_policy(cfg.trainer, get_class(cfg.model._target_)))
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
    cfg: DictConfig,
    skeleton: Skeleton,
    device: torch.device,
    batch_per_rank: int,
    local_ranks: int,
    amp: torch.dtype | None = None,
) -> GaitModel:
    """The model on ``device``, with activation recomputation when asked or when the memory guard needs it (its
    estimate under autocast to ``amp``, the run's precision)."""
    network = build_model(cfg.model, skeleton)
    setting = cfg.trainer.recompute
    level = budget.SETTINGS.get(setting, "off")
    memory = cfg.trainer.memory
    if memory.guard:
        estimate = budget.estimate_once(
            _architecture(cfg, batch_per_rank, amp), network, batch_per_rank, cfg.dataset.sequence_length, amp
        )
        limit = memory.limit_gb
        room = int(limit * 1e9) if limit is not None else budget.available_bytes(device) // local_ranks
        precision = "" if amp is None else f" in {str(amp).removeprefix('torch.')} autocast"
        what = (
            f"training {cfg.model._target_.rsplit('.', 1)[-1]} on batches of {batch_per_rank} x "
            f"{cfg.dataset.sequence_length} frames on {device.type}{precision}"
        )
        level = budget.choose_recompute(setting, estimate, room, what=what)
    network = network.to(device)
    if level != "off" and recompute_activations(network, level) == 0:
        log.warning(
            "trainer.recompute=%s: %s declares nothing to recompute at that level; training it plainly",
            setting,
            type(network).__name__,
        )
    return network


def _architecture(cfg: DictConfig, batch_per_rank: int, amp: torch.dtype | None = None) -> str:
    """What one training step's memory depends on: the model's config, the joint layout, the batch shape and the
    precision."""
    parts = [cfg.model, cfg.keypoints, batch_per_rank, cfg.dataset.sequence_length, str(amp)]
    plain = [OmegaConf.to_container(p, resolve=True) if isinstance(p, DictConfig) else p for p in parts]
    return json.dumps(plain, sort_keys=True, default=str)


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
    """The precision ``trainer.amp`` asks for on this device (see :func:`amp_dtype`); fp16 with a GradScaler."""
    dtype = amp_dtype(cfg.trainer.amp, cfg.trainer.amp_dtype, device)
    if dtype is None:
        return Precision()
    scaler = torch.amp.GradScaler(device.type) if dtype is torch.float16 else None
    return Precision(dtype, scaler)


def amp_dtype(amp: bool | str, dtype: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype of ``trainer.amp`` (None = float32). true: ``amp_dtype`` on CUDA, bf16 on a CPU with native
    bf16 (fp16 autocast is CUDA only here); auto: bf16 where the device computes it natively (CUDA bf16, a CPU with
    AVX512-BF16/AMX), else float32. A request this device cannot follow trains in float32, said once."""
    if amp is False:
        return None
    if device.type == "cuda":
        if amp == "auto":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
        return AMP_DTYPES[dtype]
    if not cpu_has_bf16():
        if amp is True:
            log.warning("trainer.amp=true: this CPU has no native bf16 (AVX512-BF16 or AMX); training in float32")
        return None
    if amp is True and dtype == "fp16":
        log.warning("trainer.amp_dtype=fp16 is CUDA only; training in float32 (trainer.amp_dtype=bf16 fits this CPU)")
        return None
    return torch.bfloat16


def compile_forward(network: GaitModel, enabled: bool) -> torch.nn.Module:
    """``trainer.compile``: the network's forward through ``torch.compile`` (the module the Trainer runs; the plain
    network stays what is saved, averaged and evaluated, so checkpoints hold its own keys)."""
    return torch.compile(network) if enabled else network


def build_callbacks(
    cfg: DictConfig,
    splits: Splits,
    optimizer: Any,
    network: GaitModel,
    logger: Any,
    score: Callable[[GaitModel, PoseSet, str], float],
) -> dict[str, Callback]:
    """The run's callbacks by name, in the order of the ``callbacks`` config group (conf/callbacks/default.yaml,
    then those added with ``+callbacks.<name>``): a node that is null or has ``enabled: false`` is off, selection
    too when the dataset has nothing to select on; every other node is its ``_target_`` built with its settings
    and, for each constructor parameter its settings leave out, the runtime value of that name (below)."""
    nodes = _enabled_callbacks(cfg)
    if splits.selection is None:
        nodes.pop("selection", None)
    averaging, selecting = "averaging" in nodes, "selection" in nodes
    if "checkpointing" not in nodes and (averaging or not selecting):
        raise ConfigError(
            "callbacks.checkpointing",
            None,
            "a checkpointing callback: without selection (or under weight averaging) it writes best.pt, the "
            "weights the run evaluates",
            hint="keep callbacks.checkpointing (trainer.checkpoint_every_steps=null writes only at epoch ends)",
        )
    runtime = {
        "network": network,  # the plain network (never the DDP wrapper)
        "optimizer": optimizer,
        "epochs": cfg.trainer.epochs,
        "logger": logger,  # the run's tracker
        "score": _selection_score(splits, score),  # network -> the selection metric (None without a selection split)
        "selection_key": splits.selection_key,  # val/rank1, or test_selection/rank1 under legacy_test
        "save_best": not averaging,  # whether selection writes best.pt
        "final_is_best": averaging or not selecting,  # whether the final weights are best.pt
    }
    return {name: _build_callback(name, spec, runtime) for name, spec in nodes.items()}


def _enabled_callbacks(cfg: DictConfig) -> dict[str, dict[str, Any]]:
    """The switched-on nodes of ``cfg.callbacks`` by name, in order, resolved and without their ``enabled``."""
    nodes: dict[str, dict[str, Any]] = {}
    for name, node in (cfg.get("callbacks") or {}).items():
        if node is None:
            continue
        if not isinstance(node, DictConfig) or "_target_" not in node:
            raise ConfigError(
                f"callbacks.{name}", node, "a node with a _target_ (a Callback class) and its settings, or null (off)"
            )
        spec = OmegaConf.to_container(node, resolve=True)
        if spec.pop("enabled", True):
            nodes[str(name)] = spec
    return nodes


def _selection_score(splits: Splits, score: Callable[[GaitModel, PoseSet, str], float]) -> Callable | None:
    """Network -> the selection metric on the selection split (None when there is none)."""
    selection = splits.selection
    if selection is None:
        return None
    name = "test" if selection is splits.test else "val"
    return lambda net: score(net, selection, name)


def _build_callback(name: str, spec: dict[str, Any], runtime: dict[str, Any]) -> Callback:
    """``spec``'s ``_target_`` called with its settings plus the runtime arguments its signature names."""
    factory = build(spec, _partial_=True)
    callback = factory(**_runtime_arguments(name, spec, factory, runtime))
    if not isinstance(callback, Callback):
        raise ConfigError(
            f"callbacks.{name}._target_", spec["_target_"], "a subclass of gaitgraph.engine.callbacks.Callback"
        )
    return callback


def _runtime_arguments(name: str, spec: dict[str, Any], factory: Any, runtime: dict[str, Any]) -> dict[str, Any]:
    """The runtime arguments ``factory`` (a partial of the callback class) takes and its settings do not give;
    settings that do not fit its signature are a config error here, not a TypeError from inside the run."""
    try:
        signature = inspect.signature(factory.func)
    except (TypeError, ValueError):  # a builtin without a readable signature: its settings only
        return {}
    given = {k: v for k, v in runtime.items() if k in signature.parameters and k not in factory.keywords}
    try:
        signature.bind(*factory.args, **factory.keywords, **given)
    except TypeError as err:
        raise ConfigError(f"callbacks.{name}", spec, f"the settings {spec['_target_']} takes ({err})") from None
    return given


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
    precision = build_precision(cfg, device)
    network = build_network(cfg, skeleton, device, per_rank, ctx.local_world_size, precision.dtype)
    _check_classes(network, splits.train, cfg.dataset.name)
    optimizer, scheduler = build_optimization(cfg, network, len(batches))
    augment_rng = torch.Generator(device=device).manual_seed(int(t.seed) + 1)
    callbacks = build_callbacks(cfg, splits, optimizer, network, logger, score)
    config = OmegaConf.to_container(cfg, resolve=True)
    state = TrainState(network, optimizer, batches, augment_rng, config, scheduler, precision.scaler, callbacks)
    resume = resume_path(t.resume, run_dir)
    if resume is not None:
        state.load_state_dict(resume_checkpoint(resume, config))
    return Trainer(
        state,
        model=_wrap_distributed(ctx, compile_forward(network, t.compile), device, t.sync_bn),
        loss_fn=build(cfg.loss),
        augment=build(cfg.augmentation),
        epochs=t.epochs,
        device=device,
        checkpointer=Checkpointer(run_dir / "checkpoints"),
        callbacks=list(callbacks.values()),
        ctx=ctx,
        precision=precision,
        grad_clip=t.grad_clip,
        grad_spike_factor=t.grad_spike_factor,
        step_per_batch=cfg.optimizer.get("interval", "step") == "step",
    )
