"""The ``logger`` group: each tracker writes what its own reader reads back, with the same keys and values."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gaitgraph.loggers import LoggerGroup, build_logger
from gaitgraph.loggers.base import NullTracker, Tracker
from gaitgraph.loggers.csv import CsvLogger

from .conftest import compose_train
from .wandb_offline import wait_offline_run

# What a short run logs: per-step values, then an epoch record that adds keys at the same step.
CALLS = [
    ({"train/loss": 3.5, "train/lr": 1e-3}, 1),
    ({"train/loss": 2.5, "train/lr": 2e-3}, 2),
    ({"train/loss_epoch": 3.0, "val/rank1": 0.25, "epoch": 1}, 2),
    ({"train/loss": 1.5, "train/lr": 1e-4}, 3),
    ({"train/loss_epoch": 1.5, "val/rank1": 0.5, "epoch": 2}, 3),
]
KEYS = {k for metrics, _ in CALLS for k in metrics}


def _table() -> pd.DataFrame:
    return pd.DataFrame({"000": [0.5], "mean": [0.5]}, index=pd.Index(["nm"], name="condition"))


def _drive(logger: Tracker, run_dir: Path, image: Path) -> None:
    logger.start(run_dir, {"model": {"depth": 21}}, name="exp", tags=["t"])
    for metrics, step in CALLS:
        logger.log_metrics(metrics, step=step)
    logger.log_table("test/psymo10/table", _table())
    logger.log_image("test/psymo10/heatmap", image)
    logger.finish()
    logger.finish()  # safe twice


def _image(tmp_path: Path) -> Path:
    path = tmp_path / "heatmap.png"
    Image.new("RGB", (12, 8), (200, 10, 10)).save(path)
    return path


def _expected(key: str) -> list[tuple[int, float]]:
    """What every tracker holds for ``key``: rank-1 in percent (the platform hands fractions to the group)."""
    scale = 100 if key == "val/rank1" else 1
    return [(step, metrics[key] * scale) for metrics, step in CALLS if key in metrics]


def _tensorboard(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def test_csv_rows_readable_mid_run_and_widened_by_new_keys(tmp_path: Path):
    logger = CsvLogger()
    logger.start(tmp_path, {}, name="exp", tags=[])
    logger.log_metrics({"train/loss": 2.0}, step=1)
    mid = pd.read_csv(tmp_path / "metrics.csv")  # before finish: already on disk
    assert list(mid.columns) == ["step", "train/loss"] and mid["train/loss"].tolist() == [2.0]
    logger.log_metrics({"train/loss": 1.0}, step=2)
    logger.log_metrics({"val/rank1": 0.5}, step=2)
    logger.finish()
    table = pd.read_csv(tmp_path / "metrics.csv")
    assert list(table.columns) == ["step", "train/loss", "val/rank1"]
    assert table["step"].tolist() == [1, 2, 2]
    assert table["train/loss"].tolist()[:2] == [2.0, 1.0] and np.isnan(table["train/loss"].iloc[2])
    assert table["val/rank1"].iloc[2] == 0.5

    resumed = CsvLogger()  # a resumed run in the same directory continues the file
    resumed.start(tmp_path, {}, name="exp", tags=[])
    resumed.log_metrics({"train/loss": 0.5}, step=3)
    resumed.finish()
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].tolist() == [1, 2, 2, 3]


def test_many_loggers_write_the_same_keys_and_values(tmp_path: Path):
    cfg = compose_train(["logger=many"])
    logger = build_logger(cfg.logger)
    assert set(logger.loggers) == {"wandb", "csv", "tensorboard"}
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _drive(logger, run_dir, _image(tmp_path))

    table = pd.read_csv(run_dir / "metrics.csv")
    assert set(table.columns) == {"step"} | KEYS
    for key in KEYS:
        rows = table[table[key].notna()]
        assert list(zip(rows["step"], rows[key])) == _expected(key)

    events = _tensorboard(run_dir)
    assert set(events.Tags()["scalars"]) == KEYS
    for key in KEYS:
        steps, values = zip(*_expected(key))
        assert [e.step for e in events.Scalars(key)] == list(steps)
        assert [e.value for e in events.Scalars(key)] == pytest.approx(values, rel=1e-6)  # stored as float32
    assert events.Tags()["images"] == ["test/psymo10/heatmap"]
    image = events.Images("test/psymo10/heatmap")[0]
    assert (image.width, image.height) == (12, 8)
    assert "test/psymo10/table/text_summary" in events.Tags()["tensors"]
    text = events.Tensors("test/psymo10/table/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "| condition | 000 | mean |" in text and "| nm | 0.5 | 0.5 |" in text

    run = wait_offline_run(run_dir)
    assert {k for k in run.history_keys() if not k.startswith("_")} >= KEYS
    for key in KEYS:
        assert [(r["_step"], r[key]) for r in run.history if key in r] == _expected(key)


def test_wandb_names_job_types_and_summaries(tmp_path: Path):
    cfg = compose_train([])
    logger = build_logger(cfg.logger)
    config = {"hparams_search": {"study_name": "study-x", "trial_number": 7}}
    logger.start(tmp_path, config, name="sweep_small", tags=[], job_type="eval")
    for metrics, step in CALLS:
        logger.log_metrics(metrics, step=step)
    logger.log_metrics({"test/mean_rank1": 0.4, "test/psymo10/heatmap_count": 1.0})
    logger.finish()
    run = wait_offline_run(tmp_path)
    assert run.name == "study-x-trial7" and run.job_type == "eval" and run.group == "study-x"
    # Best rank-1 (50 % at step 3, here also the last) and lowest loss beside the last value; rank-1 in percent.
    assert run.summary["val/rank1"] == {"max": 50.0, "last": 50.0}
    assert run.summary["train/loss"] == {"min": 1.5, "last": 1.5}
    assert run.summary["train/loss_epoch"] == {"min": 1.5, "last": 1.5}
    assert run.summary["test/mean_rank1"] == {"max": 40.0, "last": 40.0}
    assert run.summary["test/psymo10/heatmap_count"] == 1.0  # not taken for a mAP key


def test_wandb_run_outside_a_sweep_is_named_after_task_and_run_dir(tmp_path: Path):
    logger = build_logger(compose_train([]).logger)
    run_dir = tmp_path / "12-00-00-000001"
    run_dir.mkdir()
    logger.start(run_dir, {"hparams_search": None}, name="train", tags=[])
    logger.finish()
    run = wait_offline_run(run_dir)
    assert run.name == "train-12-00-00-000001" and run.job_type == "train"


def test_csv_and_tensorboard_compose_and_both_write(tmp_path: Path):
    cfg = compose_train(["logger=[csv,tensorboard]"])
    logger = build_logger(cfg.logger)
    assert set(logger.loggers) == {"csv", "tensorboard"}
    _drive(logger, tmp_path, _image(tmp_path))
    assert set(pd.read_csv(tmp_path / "metrics.csv").columns) == {"step"} | KEYS
    assert set(_tensorboard(tmp_path).Tags()["scalars"]) == KEYS
    assert not (tmp_path / "wandb").exists()


def test_logger_none_tracks_nothing(tmp_path: Path):
    logger = build_logger(compose_train(["logger=none"]).logger)
    assert logger.loggers == {}
    _drive(logger, tmp_path, _image(tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heatmap.png"]


def test_every_tracker_and_the_group_answer_the_tracker_interface():
    """The built-in trackers, the do-nothing one and the group all have every method of the Tracker protocol; an
    object lacking one is not a Tracker."""
    from gaitgraph.loggers.tensorboard import TensorBoardLogger
    from gaitgraph.loggers.wandb import WandbLogger

    for tracker in (NullTracker(), CsvLogger(), TensorBoardLogger(), WandbLogger(), LoggerGroup()):
        assert isinstance(tracker, Tracker), type(tracker).__name__

    class NoImages:
        def start(self, *args, **kwargs): ...
        def log_metrics(self, *args, **kwargs): ...
        def log_table(self, *args, **kwargs): ...
        def log_artifact(self, *args, **kwargs): ...
        def finish(self, *args, **kwargs): ...

    assert not isinstance(NoImages(), Tracker)


class _Broken(NullTracker):
    """A tracker whose every call raises (a full disk, a lost connection)."""

    def log_metrics(self, metrics, step=None):
        raise OSError("disk full")

    def log_image(self, key, path):
        raise RuntimeError("no image support")


class _BrokenStart(NullTracker):
    calls = 0

    def start(self, *args, **kwargs):
        raise ConnectionError("server down")

    def log_metrics(self, metrics, step=None):
        type(self).calls += 1


def test_a_failing_tracker_does_not_stop_the_others(tmp_path: Path, caplog):
    group = LoggerGroup({"broken": _Broken(), "dead": _BrokenStart(), "csv": CsvLogger()})
    with caplog.at_level(logging.WARNING, logger="gaitgraph.loggers"):
        _drive(group, tmp_path, _image(tmp_path))
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == len(CALLS)
    warnings = [r.getMessage() for r in caplog.records]
    # Once per tracker and method, not once per call.
    assert sum("'broken' failed in log_metrics" in w and "disk full" in w for w in warnings) == 1
    assert sum("'broken' failed in log_image" in w for w in warnings) == 1
    assert sum("'dead' failed in start" in w for w in warnings) == 1
    assert _BrokenStart.calls == 0  # a tracker that did not start gets no further calls


def test_a_tracker_that_cannot_be_built_is_left_out(caplog):
    cfg = {
        "csv": {"_target_": "gaitgraph.loggers.csv.CsvLogger"},
        "bad": {"_target_": "gaitgraph.loggers.csv.CsvLogger", "no_such_option": 1},
    }
    with caplog.at_level(logging.WARNING, logger="gaitgraph.loggers"):
        group = build_logger(cfg)
    assert set(group.loggers) == {"csv"}
    assert "logger 'bad' could not be built" in caplog.text


def test_a_flat_logger_config_is_a_config_error():
    from gaitgraph.errors import ConfigError

    with pytest.raises(ConfigError, match=r"logger\.mode=.*tracker config with _target_"):
        build_logger({"mode": "online"})


def test_rank_and_map_reach_every_tracker_in_percent():
    from gaitgraph.loggers.base import in_percent

    metrics = {"val/rank1": 0.25, "val/rank1_best": 0.5, "test/mean_mAP": 0.125, "test/mean_inp": 0.1, "epoch": 2}
    assert in_percent(metrics) == {
        "val/rank1": 25.0,
        "val/rank1_best": 50.0,
        "test/mean_mAP": 12.5,
        "test/mean_inp": 10.0,
        "epoch": 2,
    }
    assert in_percent({"train/loss": 0.5, "test/x/heatmap_count": 1.0, "train/samples_per_s": 3.0}) == {
        "train/loss": 0.5,
        "test/x/heatmap_count": 1.0,
        "train/samples_per_s": 3.0,
    }


def test_every_csv_row_has_a_step(tmp_path: Path):
    logger = CsvLogger()
    logger.start(tmp_path, {}, name="exp", tags=[])
    logger.log_metrics({"train/loss": 2.0}, step=4)
    logger.log_metrics({"test/mean_rank1": 0.5})  # the final numbers come without a step
    logger.finish()
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].tolist() == [4, 4]
    resumed = CsvLogger()  # a resumed run's stepless call continues from the file's last step
    resumed.start(tmp_path, {}, name="exp", tags=[])
    resumed.log_metrics({"test/mean_rank1": 0.5})
    resumed.finish()
    assert pd.read_csv(tmp_path / "metrics.csv")["step"].tolist() == [4, 4, 4]


def _hparams(run_dir: Path) -> tuple[dict, list[str], str]:
    """(hyper-parameters, metric tags, session end status) of the HParams plugin data in a run's event files."""
    from tensorboard.plugins.hparams import api_pb2
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData

    content = _tensorboard(run_dir).PluginTagToContent("hparams")
    data = {tag: HParamsPluginData.FromString(raw) for tag, raw in content.items()}
    start = data["_hparams_/session_start_info"].session_start_info
    values = {k: v.string_value or v.number_value for k, v in start.hparams.items()}
    metrics = [m.name.tag for m in data["_hparams_/experiment"].experiment.metric_infos]
    status = data.get("_hparams_/session_end_info")
    return values, metrics, api_pb2.Status.Name(status.session_end_info.status) if status else "none"


def test_tensorboard_hparams_hold_the_chosen_options_and_key_settings(tmp_path: Path):
    config = compose_train(["logger=tensorboard", "model=resgcn_n39_r8", "trainer.epochs=3"])
    logger = build_logger(config.logger)
    parts = {k: OmegaConf.to_container(config[k], resolve=True) for k in ("trainer", "optimizer", "dataset", "loss")}
    logger.start(
        tmp_path,
        {**parts, "optimized_metric": config.optimized_metric, "tta": False},
        name="train",
        tags=["model:resgcn_n39_r8", "dataset:psymo10", "optimizer:adamw_onecycle"],
    )
    logger.log_metrics({"val/rank1": 0.5, "epoch": 1}, step=3)
    logger.log_metrics({"test/mean_rank1": 0.25, "final/val/rank1": 0.5})
    logger.finish()
    values, metrics, status = _hparams(tmp_path)
    assert values["model"] == "resgcn_n39_r8" and values["dataset"] == "psymo10"
    assert values["trainer.epochs"] == 3 and values["trainer.batch_size"] == config.trainer.batch_size
    assert values["optimizer.optimizer.lr"] == pytest.approx(config.optimizer.optimizer.lr)
    assert {"val/rank1", "test/mean_rank1", "final/val/rank1"} <= set(metrics) and status == "STATUS_SUCCESS"
    # The metrics the HParams tab shows are scalars of the same run folder, in percent.
    events = _tensorboard(tmp_path)
    assert [e.value for e in events.Scalars("test/mean_rank1")] == [25.0]
    assert [e.step for e in events.Scalars("final/val/rank1")] == [3]
    assert [p.name for p in (tmp_path / "tensorboard").iterdir()] == [
        next((tmp_path / "tensorboard").glob("events.out.tfevents.*")).name
    ], "one event file in the run's own folder (add_hparams would open a second run)"


def test_a_failed_run_ends_its_hparams_session_without_success(tmp_path: Path):
    logger = build_logger(compose_train(["logger=tensorboard"]).logger)
    logger.start(tmp_path, {"trainer": {"epochs": 2}}, name="train", tags=["model:m"])
    logger.finish(exit_code=1)
    values, _, status = _hparams(tmp_path)
    assert values == {"model": "m", "trainer.epochs": 2} and status == "none"


class _Trainer:
    """What MetricLogging reads of a trainer: the step counter and the number of epochs."""

    def __init__(self) -> None:
        self.epochs = 2
        self.state = type("State", (), {"step": 0})()


def test_each_scalar_gets_one_point_per_step(tmp_path: Path):
    from gaitgraph.engine.callbacks import MetricLogging

    logger = build_logger(compose_train(["logger=[csv,tensorboard]"]).logger)
    logger.start(tmp_path, {}, name="train", tags=[])
    callback, trainer = MetricLogging(logger), _Trainer()
    for epoch in (1, 2):
        for _ in range(2):
            trainer.state.step += 1
            callback.on_train_batch_end(trainer, {"train/loss": 1.0, "train/lr": 0.1, "train/samples_per_s": 9.0})
        record = {"epoch": epoch, "train/loss_epoch": 1.0, "train/lr": 0.1, "train/samples_per_s": 9.0}
        callback.on_train_epoch_end(trainer, {**record, "val/rank1": 0.5})
    logger.finish()
    table = pd.read_csv(tmp_path / "metrics.csv")
    events = _tensorboard(tmp_path)
    for key in ("train/lr", "train/samples_per_s", "train/loss"):
        assert table.loc[table[key].notna(), "step"].tolist() == [1, 2, 3, 4]
        assert [e.step for e in events.Scalars(key)] == [1, 2, 3, 4]
    assert [e.step for e in events.Scalars("val/rank1")] == [2, 4]
    assert table["step"].notna().all()
