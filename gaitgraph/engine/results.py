"""The end of a training run: evaluate the selected weights, write ``metrics.json``
(:mod:`gaitgraph.evaluation.metrics_file`) and ``eval/``, tell the trackers and the log, and return the objective.

The objective (``optimized_metric``, what ``train()`` returns and every sweep maximises) reads the
VALIDATION split: ``val/rank1`` or ``val/mAP`` of the selected weights. Reading the test split is possible only
as the explicitly named legacy objectives ``legacy_test/rank1`` and ``legacy_test/mAP``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from gaitgraph.engine.checkpoint import BEST
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.trainer import Trainer
from gaitgraph.evaluation import pipeline
from gaitgraph.evaluation.evaluator import Evaluator
from gaitgraph.evaluation.metrics import EvalResult
from gaitgraph.evaluation.metrics_file import chance_level, tell_trackers, write_metrics
from gaitgraph.evaluation.plots import plot_training_curves
from gaitgraph.evaluation.report import save_results, table_text

log = logging.getLogger(__name__)


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
    best = trainer.checkpointer.read(BEST)
    network.load_state_dict(best["model"])
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
    protocol, test_rank1 = pipeline.selection_metric(test, cfg.metric_protocol)
    record = _write_record(cfg, run_dir, trainer, splits, best.get("epoch"), value, protocol, val, test, baseline)
    tell_trackers(logger, record, test, written)
    logger.log_artifact(run_dir / "checkpoints" / BEST, name="model", kind="model")
    log.info(_summary_line(cfg, protocol, test_rank1, baseline.get("test"), value))
    log.info("run directory: %s", run_dir)
    return None if value is None else value * 100


def _write_record(
    cfg: DictConfig,
    run_dir: Path,
    trainer: Trainer,
    splits: Any,
    epoch: int | None,
    value: float | None,
    protocol: str,
    val: dict[str, EvalResult] | None,
    test: dict[str, EvalResult],
    baseline: dict[str, dict[str, EvalResult]],
) -> dict[str, Any]:
    """metrics.json of the training run (``job: train``), written; the selected weights came from epoch ``epoch``."""
    metric_split = "test" if cfg.optimized_metric.startswith("legacy_test") else "val"
    return write_metrics(
        run_dir,
        job="train",
        metric=value,
        metric_name=cfg.optimized_metric,
        metric_protocol=protocol,
        chance=chance_level(splits.test if metric_split == "test" else splits.val),
        baseline_metric=objective(cfg.optimized_metric, baseline.get("val"), baseline.get("test", {}), protocol)
        if baseline
        else None,
        tta=bool(cfg.tta),
        distance="euclidean",  # what evaluate_model scores with during training
        selection=cfg.trainer.selection,
        ckpt_path=str((run_dir / "checkpoints" / BEST).resolve()),
        ckpt_epoch=epoch,
        train_seconds=sum(r.get("train/epoch_seconds", 0.0) for r in trainer.state.history),
        history=trainer.state.history,
        val=pipeline.summary(val) if val else None,
        test=pipeline.summary(test),
        baseline={name: pipeline.summary(r) for name, r in baseline.items()} or None,
    )


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
