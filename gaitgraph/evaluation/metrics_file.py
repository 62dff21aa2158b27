"""``metrics.json``, the record a training run (``gaitgraph.train``) and an evaluation (``gaitgraph.evaluate``)
leave in their run directory: one schema and one writer for both (docs/formats.md says what each key means), the
title of their test tables, and what both tell the trackers about the test results.

Rates in metrics.json are fractions (0.873), as in ``eval/``; the trackers receive percent
(:func:`gaitgraph.loggers.base.in_percent`), as does ``train()``'s return value.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from gaitgraph.data.poseset import PoseSet
from gaitgraph.evaluation.pipeline import Result
from gaitgraph.utils import write_json

METRICS_FILE = "metrics.json"
#: Every key of metrics.json, in the order written; a key the job has no value for is null (docs/formats.md).
KEYS = (
    "job",
    "metric",
    "metric_name",
    "metric_protocol",
    "chance",
    "baseline_metric",
    "tta",
    "distance",
    "selection",
    "ckpt_path",
    "ckpt_epoch",
    "train_seconds",
    "history",
    "val",
    "test",
    "baseline",
)
JOBS = ("train", "eval")


def write_metrics(run_dir: Path, **values: Any) -> dict[str, Any]:
    """Write ``<run_dir>/metrics.json`` with every key of :data:`KEYS` (null where ``values`` has none) and
    return the record; a key outside the schema is a programming error."""
    unknown = sorted(set(values) - set(KEYS))
    if unknown or values.get("job") not in JOBS:
        raise ValueError(f"metrics.json: keys {unknown} are not in the schema, or job {values.get('job')!r} not {JOBS}")
    record = {key: values.get(key) for key in KEYS}
    write_json(record, Path(run_dir) / METRICS_FILE)
    return record


def chance_level(split: PoseSet | None) -> float | None:
    """Rank-1 of guessing among the split's subjects (each probe's gallery holds one subject per identity)."""
    return None if split is None else 1.0 / max(int(split.meta["subject"].nunique()), 1)


def table_title(dataset: str, scored: str, tta: bool) -> str:
    """The title of the test tables: the dataset, the unit and what was scored (a model class, a checkpoint)."""
    return f"{dataset} test, rank-1 % ({scored}{', TTA' if tta else ''})"


def tell_trackers(
    tracker: Any, record: dict[str, Any], results: dict[str, Result], written: dict[str, dict[str, Path]]
) -> None:
    """Send a :class:`~gaitgraph.loggers.base.Tracker` the record's final numbers (the test mean rank-1 and mAP of
    ``metric_protocol``, and ``final/<metric_name>``) and each protocol's table and heatmap."""
    chosen = record["test"][record["metric_protocol"]]
    final = {"test/mean_rank1": chosen["mean_rank1"]}
    if chosen.get("mean_map") is not None:  # beside rank-1 in TensorBoard's HParams tab
        final["test/mean_mAP"] = chosen["mean_map"]
    if record["metric"] is not None and math.isfinite(record["metric"]):
        final[f"final/{record['metric_name']}"] = record["metric"]
    tracker.log_metrics(final)
    for name, result in results.items():
        tracker.log_table(f"test/{name}/table", result.table)
        if "png" in written[name]:  # a retrieval protocol without scored probes draws no curve
            tracker.log_image(f"test/{name}/heatmap", written[name]["png"])
