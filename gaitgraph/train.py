"""``python -m gaitgraph.train``: the one train/eval function behind single runs and sweeps."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from tqdm.auto import trange

from gaitgraph.data.cache import load_poses
from gaitgraph.data.datamodule import WindowBatches, split_by_subjects
from gaitgraph.engine.checkpoint import rng_state, save_checkpoint
from gaitgraph.engine.loop import train_epoch
from gaitgraph.evaluation import pipeline
from gaitgraph.models import build_model
from gaitgraph.models.losses import SupConLoss
from gaitgraph.utils import resolve_device, seed_everything, write_json

log = logging.getLogger(__name__)


def _run_dir(cfg: DictConfig) -> Path:
    if HydraConfig.initialized() and HydraConfig.get().runtime.output_dir:
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def _choices() -> dict[str, str]:
    """The chosen option of every config group (empty outside a Hydra app, e.g. under compose)."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v not in (None, "null")}


def train(cfg: DictConfig) -> float:
    """Load data, train, evaluate on the test split and return the selection metric (mean rank-1).

    Writes to the run directory: checkpoints/{last,best}.pt, metrics.json, eval/ (tables + heatmap),
    and the W&B run (offline by default).
    """
    run_dir = _run_dir(cfg)
    console = Console()
    seed_everything(cfg.trainer.seed, cfg.trainer.deterministic)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    device = resolve_device(cfg.trainer.device)
    config = OmegaConf.to_container(cfg, resolve=True)

    logger = instantiate(cfg.logger)
    choices = _choices()
    logger.start(run_dir, config, name=cfg.task_name, tags=[f"{k}:{v}" for k, v in choices.items()])
    exit_code = 1
    try:
        skeleton = instantiate(cfg.keypoints)
        poses = load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
        splits = split_by_subjects(poses, cfg.dataset.split)
        train_set, test_set = splits["train"], splits["test"]
        val_set = splits.get("val")
        if val_set is not None and len(val_set) == 0:
            val_set = None
        log.info(
            "data: %d train / %d val / %d test sequences",
            len(train_set), len(val_set) if val_set else 0, len(test_set),
        )

        model = build_model(cfg.model, skeleton).to(device)
        features = cfg.model.features
        loss_fn = SupConLoss(temperature=cfg.loss.temperature)
        augment = instantiate(cfg.augmentation, _partial_=True)(skeleton=skeleton)
        batches = WindowBatches(
            train_set, cfg.dataset.sequence_length, cfg.trainer.batch_size, cfg.trainer.seed, cfg.trainer.drop_last
        )
        optimizer = instantiate(cfg.optimizer.optimizer)(params=model.parameters())
        scheduler = None
        per_step = cfg.optimizer.interval == "step"
        if cfg.optimizer.get("scheduler"):
            total = cfg.trainer.epochs * (len(batches) if per_step else 1)
            scheduler = instantiate(cfg.optimizer.scheduler)(optimizer, total_steps=total)

        ckpt_dir = run_dir / "checkpoints"
        history: list[dict[str, float]] = []
        best_val, step = -math.inf, 0
        start = time.perf_counter()

        def on_step(metrics: dict[str, float]) -> None:
            nonlocal step
            step += 1
            logger.log_metrics(metrics, step=step)

        def checkpoint(epoch: int) -> dict:
            return {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "batches": batches.state_dict(),
                "rng": rng_state(),
                "epoch": epoch,
                "step": step,
                "config": config,
            }

        epochs = trange(cfg.trainer.epochs, desc="epochs", dynamic_ncols=True)
        for epoch in epochs:
            stats = train_epoch(
                model, batches, skeleton=skeleton, features=features, augment=augment, loss_fn=loss_fn,
                optimizer=optimizer, scheduler=scheduler, step_scheduler_per_batch=per_step, device=device,
                grad_clip=cfg.trainer.grad_clip, on_step=on_step, desc=f"epoch {epoch + 1}",
            )
            if not math.isfinite(stats["loss"]):
                raise FloatingPointError(f"training loss became {stats['loss']} in epoch {epoch + 1}")
            record = {"epoch": epoch + 1, **{f"train/{k}": v for k, v in stats.items()}}
            if val_set is not None and ((epoch + 1) % cfg.trainer.val_every == 0 or epoch + 1 == cfg.trainer.epochs):
                val = pipeline.evaluate_model(
                    model, val_set, cfg.dataset, skeleton, features=features, tta=False,
                    batch_size=cfg.trainer.eval_batch_size, device=device,
                )
                _, record["val/rank1"] = pipeline.selection_metric(val, cfg.metric_protocol)
                if record["val/rank1"] > best_val:
                    best_val = record["val/rank1"]
                    save_checkpoint(checkpoint(epoch + 1), ckpt_dir / "best.pt")
            history.append(record)
            logger.log_metrics({k: v for k, v in record.items() if k != "epoch"} | {"epoch": epoch + 1}, step=step)
            epochs.set_postfix(loss=f"{stats['loss']:.3f}", sps=f"{stats['samples_per_s']:.0f}")
            save_checkpoint(checkpoint(epoch + 1), ckpt_dir / "last.pt")
        train_seconds = time.perf_counter() - start
        if val_set is None:
            # Without a validation split there is nothing to select on: the final weights are "best".
            save_checkpoint(checkpoint(cfg.trainer.epochs), ckpt_dir / "best.pt")
        else:
            model.load_state_dict(torch.load(ckpt_dir / "best.pt", weights_only=True)["model"])

        results = pipeline.evaluate_model(
            model, test_set, cfg.dataset, skeleton, features=features, tta=cfg.tta,
            batch_size=cfg.trainer.eval_batch_size, device=device,
        )
        baseline = pipeline.evaluate_baseline(test_set, cfg.dataset) if cfg.baseline else None
        title = f"{cfg.dataset.name} test, rank-1 % ({choices.get('model', 'model')}{', TTA' if cfg.tta else ''})"
        written = pipeline.report(results, run_dir / "eval", title, baseline=baseline, console=console)
        protocol, metric = pipeline.selection_metric(results, cfg.metric_protocol)

        metrics = {
            "metric": metric,
            "metric_protocol": protocol,
            "tta": bool(cfg.tta),
            "train_seconds": train_seconds,
            "best_val_rank1": best_val if val_set is not None else None,
            "history": history,
            "test": pipeline.summary(results),
            "baseline": pipeline.summary(baseline) if baseline else None,
        }
        write_json(metrics, run_dir / "metrics.json")
        logger.log_metrics({"test/mean_rank1": metric} | (
            {"baseline/mean_rank1": pipeline.selection_metric(baseline, protocol)[1]} if baseline else {}
        ))
        for name, result in results.items():
            logger.log_table(f"test/{name}/table", result.table)
            logger.log_image(f"test/{name}/heatmap", written[name] / "heatmap.png")
        logger.log_artifact(ckpt_dir / "best.pt", name=f"model-{cfg.task_name}", kind="model")
        line = f"mean rank-1 ({protocol}): model {metric * 100:.1f}%"
        if baseline:
            line += f" | nearest-neighbour pose baseline {pipeline.selection_metric(baseline, protocol)[1] * 100:.1f}%"
        console.print(line)
        console.print(f"run directory: {run_dir}")
        if not math.isfinite(metric):
            # A NaN return crashes hydra-optuna-sweeper 1.3.0; raising records a failed trial instead.
            raise FloatingPointError(f"selection metric is {metric}")
        exit_code = 0
        return metric
    finally:
        logger.finish(exit_code)


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> float:
    """Hydra entry point: returns the metric so sweepers can optimise it."""
    return train(cfg)


if __name__ == "__main__":
    main()
