"""``python -m gaitgraph.evaluate ckpt_path=...``: score a trained checkpoint on its dataset's test split.

The model, keypoints and dataset configs come from the checkpoint's stored (resolved) config, so a
checkpoint is evaluated exactly as it was trained. On the command line, choosing a group (``dataset=casia_b``)
replaces the stored config by the local one; editing keys (``dataset.sequence_length=60``) edits the stored
one. Writes ``eval/`` (tables, heatmap) and ``metrics.json`` into the Hydra run directory.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import hydra
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from gaitgraph.engine.restore import load_run
from gaitgraph.evaluation import pipeline
from gaitgraph.loggers import build_logger
from gaitgraph.utils import run_dir_of, write_json

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, overrides: Sequence[str] | None = None) -> float:
    """Embed the test split with the checkpoint, score every protocol, report; return the mean rank-1
    of ``cfg.metric_protocol`` (the dataset's first protocol by default)."""
    run_dir = run_dir_of(cfg)
    console = Console()
    run = load_run(cfg, overrides)
    log.info("evaluating %s on %d test sequences", cfg.ckpt_path, len(run.test))

    logger = build_logger(cfg.logger)
    logger.start(run_dir, OmegaConf.to_container(cfg, resolve=True), name=cfg.task_name, tags=["evaluate"],
                 job_type="eval")
    exit_code = 1
    try:
        results = pipeline.evaluate_model(
            run.model, run.test, run.dataset_cfg, run.skeleton, tta=cfg.tta,
            batch_size=cfg.trainer.eval_batch_size, device=run.device, distance=cfg.distance,
        )
        title = f"{run.dataset_cfg.name} test, rank-1 % ({Path(cfg.ckpt_path).name}{', TTA' if cfg.tta else ''})"
        written = pipeline.report(results, run_dir / "eval", title, console=console, tta=bool(cfg.tta))
        protocol, metric = pipeline.selection_metric(results, cfg.metric_protocol)
        write_json(
            {
                "metric": metric,
                "metric_protocol": protocol,
                "tta": bool(cfg.tta),
                "distance": cfg.distance,
                "ckpt_path": str(Path(cfg.ckpt_path).resolve()),
                "ckpt_epoch": run.state.get("epoch"),
                "test": pipeline.summary(results),
            },
            run_dir / "metrics.json",
        )
        logger.log_metrics({"test/mean_rank1": metric})
        for name, result in results.items():
            logger.log_table(f"test/{name}/table", result.table)
            logger.log_image(f"test/{name}/heatmap", written[name]["png"])
        console.print(f"mean rank-1 ({protocol}{', TTA' if cfg.tta else ''}): {metric * 100:.1f}%")
        console.print(f"run directory: {run_dir}")
        exit_code = 0
        return metric
    finally:
        logger.finish(exit_code)


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> float:
    """Hydra entry point."""
    return evaluate(cfg)


if __name__ == "__main__":
    main()
