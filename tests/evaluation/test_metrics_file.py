"""metrics.json has one schema and one writer (gaitgraph/evaluation/metrics_file.py); the trackers get the same
final numbers from it in training and evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from gaitgraph.evaluation.metrics_file import KEYS, table_title, tell_trackers, write_metrics


def test_every_key_is_written_in_order_with_null_for_what_a_job_lacks(tmp_path: Path):
    test = {"p": {"mean_rank1": 0.5, "mean_map": None}}
    record = write_metrics(tmp_path, job="eval", metric=0.5, metric_name="test/rank1", metric_protocol="p", test=test)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored == record and list(stored) == list(KEYS)
    assert stored["metric"] == 0.5 and stored["history"] is None and stored["baseline_metric"] is None


@pytest.mark.parametrize("values", [{"job": "train", "rank1": 0.5}, {"job": "predict"}, {}])
def test_a_key_or_job_outside_the_schema_is_refused(tmp_path: Path, values: dict):
    with pytest.raises(ValueError, match="not in the schema"):
        write_metrics(tmp_path, **values)
    assert not (tmp_path / "metrics.json").exists()


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def log_metrics(self, metrics, step=None):
        self.calls.append(("metrics", metrics))

    def log_table(self, key, table):
        self.calls.append(("table", key))

    def log_image(self, key, path):
        self.calls.append(("image", key, path))


class _Result:
    table = pd.DataFrame({"mean": [0.5]})


@pytest.mark.parametrize(
    ("metric", "mean_map", "final"),
    [
        (0.75, 0.4, {"test/mean_rank1": 0.5, "test/mean_mAP": 0.4, "final/val/rank1": 0.75}),
        (None, None, {"test/mean_rank1": 0.5}),  # no validation split: no objective; no mAP for this protocol
        (float("nan"), None, {"test/mean_rank1": 0.5}),
    ],
)
def test_trackers_get_the_final_numbers_tables_and_drawn_heatmaps(metric, mean_map, final):
    record = {
        "metric": metric,
        "metric_name": "val/rank1",
        "metric_protocol": "b",
        "test": {"a": {"mean_rank1": 0.9}, "b": {"mean_rank1": 0.5, "mean_map": mean_map}},
    }
    tracker = _Recorder()
    tell_trackers(tracker, record, {"a": _Result(), "b": _Result()}, {"a": {"png": Path("a.png")}, "b": {}})
    assert tracker.calls == [
        ("metrics", final),
        ("table", "test/a/table"),
        ("image", "test/a/heatmap", Path("a.png")),
        ("table", "test/b/table"),
    ]


def test_the_table_title_names_dataset_unit_what_was_scored_and_tta():
    assert table_title("casia_b", "ResGCN", False) == "casia_b test, rank-1 % (ResGCN)"
    assert table_title("psymo10", "best.pt", True) == "psymo10 test, rank-1 % (best.pt, TTA)"
