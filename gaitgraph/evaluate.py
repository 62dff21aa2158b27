"""``python -m gaitgraph.evaluate ckpt_path=...``: score a trained checkpoint on its dataset's test split.

The model, keypoints and dataset configs come from the checkpoint's stored (resolved) config, so a
checkpoint is evaluated exactly as it was trained. On the command line, choosing a group (``dataset=casia_b``)
replaces the stored config by the local one; editing keys (``dataset.sequence_length=60``) edits the stored
one. Writes ``eval/`` (tables, heatmap) and ``metrics.json`` (``job: eval``, the schema training writes too:
docs/formats.md) into the Hydra run directory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig
from rich.console import Console

from gaitgraph.cli import config_choices, entry
from gaitgraph.utils import run_dir_of

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig, overrides: Sequence[str] | None = None) -> float:
    """Embed the test split with the checkpoint, score every protocol, report; return the mean rank-1
    of ``cfg.metric_protocol`` (the dataset's first protocol by default)."""
    # Loaded when the task runs, so --help, --cfg and shell completion answer at once (benchmarks/startup.py).
    from gaitgraph.engine.restore import load_run
    from gaitgraph.evaluation import pipeline
    from gaitgraph.evaluation.metrics_file import chance_level, table_title, tell_trackers, write_metrics
    from gaitgraph.loggers import tracker_session

    run_dir = run_dir_of(cfg)
    run = load_run(cfg, overrides)
    log.info("evaluating %s on %d test sequences", cfg.ckpt_path, len(run.test))
    with tracker_session(cfg, run_dir, config_choices(), job_type="eval") as tracker:
        results = pipeline.evaluate_model(
            run.model,
            run.test,
            run.dataset_cfg,
            run.skeleton,
            tta=cfg.tta,
            batch_size=cfg.trainer.eval_batch_size,
            device=run.device,
            distance=cfg.distance,
        )
        title = table_title(run.dataset_cfg.name, Path(cfg.ckpt_path).name, bool(cfg.tta))
        written = pipeline.report(results, run_dir / "eval", title, console=Console(), tta=bool(cfg.tta))
        protocol, metric = pipeline.selection_metric(results, cfg.metric_protocol)
        record = write_metrics(
            run_dir,
            job="eval",
            metric=metric,
            metric_name="test/rank1",
            metric_protocol=protocol,
            chance=chance_level(run.test),
            tta=bool(cfg.tta),
            distance=cfg.distance,
            ckpt_path=str(Path(cfg.ckpt_path).resolve()),
            ckpt_epoch=run.state.get("epoch"),
            test=pipeline.summary(results),
        )
        tell_trackers(tracker, record, results, written)
        log.info("mean rank-1 (%s%s): %.1f%%", protocol, ", TTA" if cfg.tta else "", metric * 100)
        log.info("run directory: %s", run_dir)
        return metric


@entry("evaluate")
def main(cfg: DictConfig) -> float:
    """Hydra entry point (``gaitgraph-eval``)."""
    return evaluate(cfg)


if __name__ == "__main__":
    main()
