"""Scoring a network on a split, and the end of a training run: evaluate the selected weights, write
``metrics.json`` and ``eval/``, tell the trackers and the log, and return the objective.

The objective (``optimized_metric``, what ``train()`` returns and every sweep maximises) reads the
VALIDATION split: ``val/rank1`` or ``val/mAP`` of the selected weights. Reading the test split is possible only
as the explicitly named legacy objectives ``legacy_test/rank1`` and ``legacy_test/mAP``.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gaitgraph.data.poseset import PoseSet
from gaitgraph.engine.checkpoint import BEST
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.trainer import Trainer
from gaitgraph.evaluation import pipeline
from gaitgraph.evaluation.metrics import EvalResult
from gaitgraph.evaluation.plots import plot_training_curves
from gaitgraph.evaluation.report import save_results, table_text
from gaitgraph.models import GaitModel
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import load_checkpoint, write_json

log = logging.getLogger(__name__)

#: ``optimized_metric`` values: split prefix / measure.
OBJECTIVES = ("val/rank1", "val/mAP", "legacy_test/rank1", "legacy_test/mAP")


class Evaluator:
    """Embeds a split with a network and scores every protocol of the dataset (no state of its own)."""

    def __init__(self, cfg: DictConfig, skeleton: Skeleton, device: torch.device) -> None:
        self.dataset = cfg.dataset
        self.skeleton = skeleton
        self.device = device
        self.batch_size = cfg.trainer.eval_batch_size
        self.protocol = cfg.metric_protocol

    def results(self, network: GaitModel, poses: PoseSet, tta: bool, split: str) -> dict[str, EvalResult]:
        """Every protocol's result on ``poses``, the dataset's ``split`` ("val" or "test")."""
        return pipeline.evaluate_model(
            network,
            poses,
            self.dataset,
            self.skeleton,
            tta=tta,
            batch_size=self.batch_size,
            device=self.device,
            split=split,
        )

    def score(self, network: GaitModel, poses: PoseSet, split: str) -> float:
        """The selection score: mean rank-1 of ``metric_protocol`` (the dataset's first by default), no TTA."""
        return pipeline.selection_metric(self.results(network, poses, False, split), self.protocol)[1]


def objective(
    name: str, val: dict[str, EvalResult] | None, test: dict[str, EvalResult], protocol: str | None
) -> float | None:
    """The value of ``optimized_metric`` (None when it reads a validation split the dataset lacks)."""
    split, measure = name.split("/")
    results = test if split == "legacy_test" else val
    if results is None:
        return None
    chosen = pipeline.selection_metric(results, protocol)[0]
    return float(results[chosen].mean_rank1 if measure == "rank1" else results[chosen].mean_map)


def chance_level(split: PoseSet | None) -> float | None:
    """Rank-1 of guessing among the split's subjects (each probe's gallery holds one subject per identity)."""
    return None if split is None else 1.0 / max(int(split.meta["subject"].nunique()), 1)


def finish(
    ctx: DistContext,
    cfg: DictConfig,
    run_dir: Path,
    trainer: Trainer,
    splits: Any,
    evaluator: Evaluator,
    logger: Any,
    title: str,
) -> float | None:
    """Evaluate ``best.pt`` on val and test, write the results and return the objective in percent, the unit of
    every tracker and Optuna plot (rank 0; None elsewhere). metrics.json keeps fractions, as eval/ does."""
    ctx.barrier()
    if not ctx.is_main:
        return None
    network = trainer.network
    network.load_state_dict(load_checkpoint(run_dir / "checkpoints" / BEST)["model"])
    test = evaluator.results(network, splits.test, bool(cfg.tta), "test")
    val = evaluator.results(network, splits.val, False, "val") if splits.val is not None else None
    baseline = _baselines(cfg, splits)
    written = save_results(list(test.values()), run_dir / "eval", title, baseline.get("test"), bool(cfg.tta))
    for name, result in test.items():  # the one print of each table: to the console and train.log
        log.info(
            "test results [%s]:\n%s", name, table_text(result, f"{title} [{name}]", baseline.get("test", {}).get(name))
        )
    _plot_curves(cfg, run_dir, trainer.state.history, splits, baseline)
    value = objective(cfg.optimized_metric, val, test, cfg.metric_protocol)
    metric_split = "test" if cfg.optimized_metric.startswith("legacy_test") else "val"
    protocol, test_rank1 = pipeline.selection_metric(test, cfg.metric_protocol)
    metrics = {
        "metric": value,
        "metric_name": cfg.optimized_metric,
        "metric_protocol": protocol,
        "chance": chance_level(splits.test if metric_split == "test" else splits.val),
        "baseline_metric": objective(cfg.optimized_metric, baseline.get("val"), baseline.get("test", {}), protocol)
        if baseline
        else None,
        "tta": bool(cfg.tta),
        "selection": cfg.trainer.selection,
        "train_seconds": sum(r.get("train/epoch_seconds", 0.0) for r in trainer.state.history),
        "history": trainer.state.history,
        "val": pipeline.summary(val) if val else None,
        "test": pipeline.summary(test),
        "baseline": {name: pipeline.summary(r) for name, r in baseline.items()} or None,
    }
    write_json(metrics, run_dir / "metrics.json")
    _tell(logger, metrics, test, written, run_dir)
    log.info(_summary_line(cfg, protocol, test_rank1, baseline.get("test"), value))
    log.info("run directory: %s", run_dir)
    return None if value is None else value * 100


def _plot_curves(
    cfg: DictConfig, run_dir: Path, history: list, splits: Any, baseline: dict[str, dict[str, EvalResult]]
) -> None:
    """curves.png, titled with the model and the dataset; the selection split's rank-1 beside its chance level
    and the pose baseline's score on it."""
    split = "test" if cfg.trainer.selection == "legacy_test" else "val"
    references = {"chance": chance_level(getattr(splits, split))}
    if baseline.get(split):
        references["pose baseline"] = pipeline.selection_metric(baseline[split], cfg.metric_protocol)[1]
    model = cfg.model._target_.rsplit(".", 1)[-1]
    if HydraConfig.initialized():  # the option's name (resgcn_n39_r8) says more than the class (ResGCN)
        model = HydraConfig.get().runtime.choices.get("model") or model
    title = f"{model} on {cfg.dataset.name}: training curves ({cfg.task_name})"
    levels = {k: v for k, v in references.items() if v is not None}
    plot_training_curves(history, run_dir / "curves.png", title=title, references=levels)


def _baselines(cfg: DictConfig, splits: Any) -> dict[str, dict[str, EvalResult]]:
    """The nearest-neighbour pose baseline on test and val (empty when ``baseline=false``)."""
    if not cfg.baseline:
        return {}
    pairs = (("test", splits.test), ("val", splits.val))
    return {
        name: pipeline.evaluate_baseline(poses, cfg.dataset, split=name) for name, poses in pairs if poses is not None
    }


def _summary_line(
    cfg: DictConfig, protocol: str, test_rank1: float, baseline: dict[str, EvalResult] | None, value: float | None
) -> str:
    """The run's last log line: test rank-1, the baseline's, and the objective."""
    summary = f"test mean rank-1 ({protocol}{', TTA' if cfg.tta else ''}): {test_rank1 * 100:.1f}%"
    if baseline:
        summary += f" | nearest-neighbour pose baseline {pipeline.selection_metric(baseline, protocol)[1] * 100:.1f}%"
    if value is not None:
        summary += f" | {cfg.optimized_metric} (the objective): {value * 100:.1f}%"
    return summary


def _tell(logger: Any, metrics: dict[str, Any], test: dict[str, EvalResult], written: dict, run_dir: Path) -> None:
    """The final numbers, tables, heatmaps and the selected checkpoint to the trackers."""
    chosen = metrics["test"][metrics["metric_protocol"]]
    final = {"test/mean_rank1": chosen["mean_rank1"]}
    if chosen.get("mean_map") is not None:  # beside rank-1 in TensorBoard's HParams tab
        final["test/mean_mAP"] = chosen["mean_map"]
    if metrics["metric"] is not None and math.isfinite(metrics["metric"]):
        final[f"final/{metrics['metric_name']}"] = metrics["metric"]
    logger.log_metrics(final)
    for name, result in test.items():
        logger.log_table(f"test/{name}/table", result.table)
        if "png" in written[name]:  # a retrieval protocol without scored probes draws no curve
            logger.log_image(f"test/{name}/heatmap", written[name]["png"])
    logger.log_artifact(run_dir / "checkpoints" / BEST, name="model", kind="model")
