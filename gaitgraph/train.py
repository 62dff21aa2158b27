"""``python -m gaitgraph.train``: the one train/eval function behind single runs, DDP runs and sweeps.

``trainer.devices=N`` (N > 1) spawns N workers from inside the Hydra task and returns rank 0's metric, so a DDP
run can be one sweep trial. Under ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK set) every rank runs this app and
joins the launcher's group instead; pin ``hydra.run.dir`` so all ranks write to one directory, e.g.
``torchrun --nproc_per_node 2 -m gaitgraph.train hydra.run.dir=outputs/ddp/${TORCHELASTIC_RUN_ID}``.
BatchNorm under DDP uses each rank's local batch statistics (standard DDP); ``trainer.sync_bn=true`` converts
to SyncBatchNorm (CUDA only). SupCon always sees the global batch (embeddings gathered from every rank).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from tqdm.auto import trange

from gaitgraph.data.cache import load_poses
from gaitgraph.data.datamodule import WindowBatches, resolve_split, split_by_subjects
from gaitgraph.engine import distributed
from gaitgraph.engine.checkpoint import load_checkpoint, resume_path, rng_state, save_checkpoint, set_rng_state
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.host_malloc import configure_malloc
from gaitgraph.engine.memory import checkpoint_activations
from gaitgraph.engine.loop import Precision, features_of, train_epoch
from gaitgraph.engine.swa import WeightAveraging
from gaitgraph.evaluation import pipeline
from gaitgraph.loggers.base import NullLogger
from gaitgraph.models import build_model
from gaitgraph.models.losses import SupConLoss
from gaitgraph.utils import run_dir_of, seed_everything, write_json

log = logging.getLogger(__name__)

SELECTIONS = ("val", "legacy_test")
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def _choices() -> dict[str, str]:
    """The chosen option of every config group (empty outside a Hydra app, e.g. under compose)."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v not in (None, "null")}


def train(cfg: DictConfig) -> float:
    """Load data, train, evaluate on the test split and return the selection metric (mean rank-1).

    Writes to the run directory: checkpoints/{last,best}.pt, metrics.json, eval/ (tables + heatmap),
    and the W&B run (offline by default). See the module docstring for DDP.
    """
    run_dir, choices = run_dir_of(cfg), _choices()
    if distributed.launched_by_torchrun():
        ctx = distributed.join_torchrun(cfg.trainer.device)
        if not ctx.is_main:  # every rank runs Hydra's logging set-up; one voice in train.log
            logging.getLogger().setLevel(logging.WARNING)
        try:
            return _train(ctx, cfg, run_dir, choices)
        finally:
            torch.distributed.destroy_process_group()
    devices = int(cfg.trainer.get("devices", 1))
    if devices > 1:
        # The children have no Hydra context: hand them the resolved config.
        plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        return distributed.spawn(_train, devices, cfg.trainer.device, (plain, run_dir, choices), run_dir)
    return _train(DistContext(), cfg, run_dir, choices)


def _precision(cfg: DictConfig, device: torch.device) -> Precision:
    if not cfg.trainer.get("amp"):
        return Precision()
    if device.type != "cuda":
        warnings.warn("trainer.amp=true is ignored on CPU: training in float32", stacklevel=2)
        return Precision()
    name = cfg.trainer.get("amp_dtype", "bf16")
    if name not in AMP_DTYPES:
        raise ValueError(f"trainer.amp_dtype: expected one of {sorted(AMP_DTYPES)}, found {name!r}")
    scaler = torch.amp.GradScaler("cuda") if name == "fp16" else None
    return Precision(AMP_DTYPES[name], scaler)


def _train(ctx: DistContext, cfg: DictConfig, run_dir: Path, choices: dict[str, str]) -> float:
    """The whole run on one rank; rank 0 alone logs, evaluates and writes, the others wait at barriers."""
    console = Console()
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    threads = cfg.trainer.num_threads or (max(1, (os.cpu_count() or 1) // ctx.world_size) if ctx.distributed else 0)
    if threads:
        torch.set_num_threads(threads)
    device = ctx.device(cfg.trainer.device)
    host_malloc = cfg.trainer.get("host_malloc") or {}
    configure_malloc(host_malloc.get("mmap_threshold_mb"), host_malloc.get("trim_threshold_mb"))
    config = OmegaConf.to_container(cfg, resolve=True)
    selection = cfg.trainer.get("selection", "val")
    if selection not in SELECTIONS:
        raise ValueError(f"trainer.selection: expected one of {SELECTIONS}, found {selection!r}")

    logger = instantiate(cfg.logger) if ctx.is_main else NullLogger()
    logger.start(run_dir, config, name=cfg.task_name, tags=[f"{k}:{v}" for k, v in choices.items()])
    exit_code = 1
    try:
        skeleton = instantiate(cfg.keypoints)
        if ctx.is_main:  # one rank builds the cache, the others read it
            poses = load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
        ctx.barrier()
        if not ctx.is_main:
            poses = load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
        splits = split_by_subjects(poses, resolve_split(cfg.dataset))
        train_set, test_set = splits["train"], splits["test"]
        val_set = splits.get("val")
        if val_set is not None and len(val_set) == 0:
            val_set = None
        if selection == "legacy_test":
            log.warning(
                "!!! trainer.selection=legacy_test: the checkpoint is SELECTED ON THE TEST SET (GaitGraph/GaitGraph2 "
                "behaviour). The reported test numbers are optimistic; do not compare them with val-selected runs."
            )
            val_set = test_set
        log.info(
            "data: %d train / %d %s / %d test sequences",
            len(train_set), len(val_set) if val_set else 0,
            "selection (TEST)" if selection == "legacy_test" else "val", len(test_set),
        )

        model = build_model(cfg.model, skeleton).to(device)
        if cfg.trainer.get("activation_checkpointing"):
            checkpoint_activations(model)
        loss_fn = SupConLoss(temperature=cfg.loss.temperature)
        augment = instantiate(cfg.augmentation, _partial_=True)(skeleton=skeleton)
        aug_rng = torch.Generator(device=device)
        aug_rng.manual_seed(int(cfg.trainer.seed) + 1)
        pk = cfg.trainer.get("pk")
        batches = WindowBatches(
            train_set, cfg.dataset.sequence_length, cfg.trainer.batch_size, cfg.trainer.seed, cfg.trainer.drop_last,
            sampler=cfg.trainer.get("sampler", "random"), pk=(int(pk.p), int(pk.k)) if pk else None,
        )
        optimizer = instantiate(cfg.optimizer.optimizer)(params=model.parameters())
        scheduler = None
        per_step = cfg.optimizer.interval == "step"
        if cfg.optimizer.get("scheduler"):
            total = cfg.trainer.epochs * (len(batches) if per_step else 1)
            scheduler = instantiate(cfg.optimizer.scheduler)(optimizer, total_steps=total)
        precision = _precision(cfg, device)
        swa_cfg = cfg.trainer.get("swa")
        swa = None
        if swa_cfg and swa_cfg.enabled:
            swa = WeightAveraging(model, cfg.trainer.epochs, swa_cfg.start_fraction, swa_cfg.lr,
                                  swa_cfg.get("anneal_epochs", 10))

        ckpt_dir = run_dir / "checkpoints"
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best": -math.inf, "history": [], "swa_applied": False}
        resume = resume_path(cfg.trainer.get("resume"), run_dir)
        if resume is not None:
            saved = load_checkpoint(resume)
            model.load_state_dict(saved["model"])
            if swa is not None and saved.get("swa") is not None:
                swa.load_state_dict(saved["swa"], optimizer)
            optimizer.load_state_dict(saved["optimizer"])
            if scheduler is not None and saved["scheduler"] is not None:
                scheduler.load_state_dict(saved["scheduler"])
            if precision.scaler is not None and saved.get("scaler") is not None:
                precision.scaler.load_state_dict(saved["scaler"])
            batches.load_state_dict(saved["batches"])
            set_rng_state(saved["rng"])
            aug_rng.set_state(saved["augment_rng"].to(aug_rng.get_state().device))
            state.update({k: saved[k] for k in ("epoch", "step", "best", "history", "swa_applied") if k in saved})
            log.info("resumed from %s at epoch %d, step %d%s", resume, state["epoch"], state["step"],
                     f" (batch {batches.position} of the epoch)" if batches.in_epoch else "")

        network = model  # the unwrapped model: what is saved and evaluated
        if ctx.distributed:
            if cfg.trainer.get("sync_bn"):
                if device.type == "cuda":
                    model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
                    network = model
                else:
                    log.warning("trainer.sync_bn=true needs CUDA (SyncBatchNorm); using per-rank BatchNorm on CPU")
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None
            )

        def checkpoint() -> dict[str, Any]:
            return {
                "model": network.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "batches": batches.state_dict(),
                "rng": rng_state(),
                "augment_rng": aug_rng.get_state().cpu(),
                "scaler": precision.scaler.state_dict() if precision.scaler is not None else None,
                "swa": swa.state_dict() if swa is not None else None,
                **state,
                "config": config,
            }

        def save(name: str) -> None:
            if ctx.is_main:
                save_checkpoint(checkpoint(), ckpt_dir / name)

        every = cfg.trainer.get("checkpoint_every_steps")

        def on_step(metrics: dict[str, float]) -> None:
            state["step"] += 1
            logger.log_metrics(metrics, step=state["step"])
            # The last batch of an epoch is covered by the end-of-epoch checkpoint.
            if every and state["step"] % every == 0 and batches.in_epoch:
                save("last.pt")

        def evaluate(split: Any, tta: bool) -> dict:
            return pipeline.evaluate_model(
                network, split, cfg.dataset, skeleton, tta=tta,
                batch_size=cfg.trainer.eval_batch_size, device=device,
            )

        start = time.perf_counter()
        epochs = trange(state["epoch"], cfg.trainer.epochs, desc="epochs", dynamic_ncols=True,
                        initial=state["epoch"], total=cfg.trainer.epochs, disable=not ctx.is_main)
        for epoch in epochs:
            under_swa = swa is not None and swa.active(epoch)
            if under_swa and swa.scheduler is None:
                swa.begin(optimizer)
            stats = train_epoch(
                model, batches, network=network, augment=augment, loss_fn=loss_fn,
                optimizer=optimizer, scheduler=None if under_swa else scheduler, step_scheduler_per_batch=per_step,
                device=device, grad_clip=cfg.trainer.grad_clip, on_step=on_step, desc=f"epoch {epoch + 1}",
                generator=aug_rng, dist=ctx, precision=precision,
            )
            if not math.isfinite(stats["loss"]):
                raise FloatingPointError(f"training loss became {stats['loss']} in epoch {epoch + 1}")
            if under_swa:
                swa.end_epoch(network)
            state["epoch"] = epoch + 1
            record = {"epoch": epoch + 1, **{f"train/{k}": v for k, v in stats.items()}}
            if val_set is not None and ((epoch + 1) % cfg.trainer.val_every == 0 or epoch + 1 == cfg.trainer.epochs):
                if ctx.is_main:
                    key = "test_selection/rank1" if selection == "legacy_test" else "val/rank1"
                    _, record[key] = pipeline.selection_metric(evaluate(val_set, False), cfg.metric_protocol)
                    if record[key] > state["best"] and swa is None:
                        state["best"] = record[key]
                        save("best.pt")
                ctx.barrier()
            state["history"].append(record)
            logger.log_metrics({k: v for k, v in record.items() if k != "epoch"} | {"epoch": epoch + 1},
                               step=state["step"])
            epochs.set_postfix(loss=f"{stats['loss']:.3f}", sps=f"{stats['samples_per_s']:.0f}")
            save("last.pt")
        train_seconds = time.perf_counter() - start

        if swa is not None and not state["swa_applied"]:
            if swa.scheduler is None:
                raise ValueError(f"trainer.swa: no epoch reached the SWA start epoch {swa.start_epoch}")
            network.load_state_dict(swa.finalize(
                features_of(x.to(device), augment, aug_rng, network) for x, _ in batches
            ).state_dict())
            state["swa_applied"] = True
            save("last.pt")
        if val_set is None or swa is not None:
            # Nothing to select on (no val split), or SWA: the final (averaged) weights are "best".
            save("best.pt")
        ctx.barrier()
        network.load_state_dict(load_checkpoint(ckpt_dir / "best.pt")["model"])

        metric = math.nan
        if ctx.is_main:
            metric = _final_report(cfg, run_dir, choices, console, logger, evaluate, test_set, state,
                                   val_set is not None, train_seconds, ckpt_dir)
        metric = ctx.broadcast(metric)
        if not math.isfinite(metric):
            # A NaN return crashes hydra-optuna-sweeper 1.3.0; raising records a failed trial instead.
            raise FloatingPointError(f"selection metric is {metric}")
        exit_code = 0
        return metric
    finally:
        logger.finish(exit_code)


def _final_report(
    cfg: DictConfig, run_dir: Path, choices: dict[str, str], console: Console, logger: Any, evaluate: Any,
    test_set: Any, state: dict[str, Any], selected: bool, train_seconds: float, ckpt_dir: Path,
) -> float:
    """Evaluate the selected weights on the test split, write metrics.json and the tables; the metric."""
    results = evaluate(test_set, bool(cfg.tta))
    baseline = pipeline.evaluate_baseline(test_set, cfg.dataset) if cfg.baseline else None
    title = f"{cfg.dataset.name} test, rank-1 % ({choices.get('model', 'model')}{', TTA' if cfg.tta else ''})"
    written = pipeline.report(results, run_dir / "eval", title, baseline=baseline, console=console)
    protocol, metric = pipeline.selection_metric(results, cfg.metric_protocol)
    metrics = {
        "metric": metric,
        "metric_protocol": protocol,
        "tta": bool(cfg.tta),
        "selection": cfg.trainer.get("selection", "val"),
        "train_seconds": train_seconds,
        "best_val_rank1": state["best"] if selected and math.isfinite(state["best"]) else None,
        "history": state["history"],
        "test": pipeline.summary(results),
        "baseline": pipeline.summary(baseline) if baseline else None,
    }
    write_json(metrics, run_dir / "metrics.json")
    logger.log_metrics({"test/mean_rank1": metric} | (
        {"baseline/mean_rank1": pipeline.selection_metric(baseline, protocol)[1]} if baseline else {}
    ))
    for name, result in results.items():
        logger.log_table(f"test/{name}/table", result.table)
        logger.log_image(f"test/{name}/heatmap", written[name]["png"])
    logger.log_artifact(ckpt_dir / "best.pt", name=f"model-{cfg.task_name}", kind="model")
    line = f"mean rank-1 ({protocol}): model {metric * 100:.1f}%"
    if baseline:
        line += f" | nearest-neighbour pose baseline {pipeline.selection_metric(baseline, protocol)[1] * 100:.1f}%"
    console.print(line)
    console.print(f"run directory: {run_dir}")
    return metric


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entry point: returns the metric so sweepers can optimise it."""
    return train(cfg)


if __name__ == "__main__":
    main()
