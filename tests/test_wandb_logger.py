"""W&B logger: offline runs hold what train() logs, online failures fall back to offline, never fail."""

from __future__ import annotations

import logging
import socket
import struct
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from gaitgraph.loggers.wandb import WandbLogger, run_group

from .wandb_offline import read_offline_run, wait_offline_run


def _closed_port() -> int:
    """A localhost port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def no_wandb_account(monkeypatch, tmp_path: Path):
    """No key anywhere and the W&B server at a closed localhost port."""
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_offline_run_holds_metrics_table_image_artifact(tmp_path: Path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    image = tmp_path / "heatmap.png"
    Image.new("RGB", (8, 8)).save(image)
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"weights")
    # A config bigger than one 32 KiB block, so the reader has to join a record split over blocks.
    config = {"model": {"depth": 21}, "hparams_search": {"study_name": "study-x"}, "note": "x" * 40_000}

    logger = WandbLogger(tags=["fixed"])
    logger.start(run_dir, config, name="exp", tags=["model:resgcn_n21_r8"])
    for step in (1, 2):
        logger.log_metrics({"train/loss": 1.0 / step, "train/lr": 0.1, "train/samples_per_s": 100.0}, step=step)
    logger.log_metrics({"val/rank1": 0.5, "epoch": 1}, step=2)
    logger.log_table("test/psymo10/table", pd.DataFrame({"mean": [0.5]}, index=pd.Index(["nm"], name="condition")))
    logger.log_image("test/psymo10/heatmap", image)
    logger.log_artifact(ckpt, name="model-exp", kind="model")
    logger.finish()
    logger.finish()  # safe twice

    run = wait_offline_run(run_dir)
    assert run.group == "study-x"  # the sweep's study groups its trials
    assert set(run.tags) == {"fixed", "model:resgcn_n21_r8"}
    assert run.config["model"] == {"depth": 21} and len(run.config["note"]) == 40_000
    keys = run.history_keys()
    assert {"train/loss", "train/lr", "train/samples_per_s", "val/rank1", "epoch"} <= keys
    assert any(k.startswith("test/psymo10/table") for k in keys)
    assert any(k.startswith("test/psymo10/heatmap") for k in keys)
    assert [row["train/loss"] for row in run.history if "train/loss" in row] == [1.0, 0.5]
    assert ("model-exp", "model") in run.artifacts
    assert run.exit_code == 0


def test_run_group_prefers_study_then_name():
    assert run_group({"hparams_search": {"study_name": "s"}}, "exp") == "s"
    assert run_group({"hparams_search": None}, "exp") == "exp"
    assert run_group({}, "exp") == "exp"


def test_explicit_group_wins(tmp_path: Path):
    logger = WandbLogger(group="mine")
    logger.start(tmp_path, {"hparams_search": {"study_name": "s"}}, name="exp", tags=[])
    logger.finish(1)
    run = wait_offline_run(tmp_path)
    assert run.group == "mine" and run.exit_code == 1


@pytest.mark.system
def test_online_without_key_falls_back_to_offline(tmp_path: Path, no_wandb_account, caplog):
    logger = WandbLogger(mode="online", init_timeout=5)
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="gaitgraph.loggers.wandb"):
        logger.start(tmp_path, {"a": 1}, name="exp", tags=[])
    logger.log_metrics({"train/loss": 1.0}, step=1)
    logger.finish()
    assert time.perf_counter() - start < 30
    assert "W&B online start failed" in caplog.text and "wandb sync" in caplog.text
    assert wait_offline_run(tmp_path).history_keys() >= {"train/loss"}


@pytest.mark.system
def test_online_unreachable_server_times_out_to_offline(tmp_path: Path, no_wandb_account, monkeypatch, caplog):
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)  # a key, but nobody answers at WANDB_BASE_URL
    logger = WandbLogger(mode="online", init_timeout=3)
    start = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="gaitgraph.loggers.wandb"):
        logger.start(tmp_path, {"a": 1}, name="exp", tags=[])
    logger.finish()
    assert time.perf_counter() - start < 30  # not wandb's default 90 s
    assert "W&B online start failed" in caplog.text
    assert wait_offline_run(tmp_path).exit_code == 0


def test_reader_rejects_other_files(tmp_path: Path):
    bad = tmp_path / "run-x.wandb"
    bad.write_bytes(b"not a datastore")
    with pytest.raises(ValueError, match="W&B datastore"):
        read_offline_run(bad)


def test_reader_stops_at_a_record_still_being_written(tmp_path: Path):
    """A file read while W&B's service appends to it ends mid-chunk: the records before it are read, the partial
    one is left for the next read (not a protobuf DecodeError)."""
    from wandb.proto import wandb_internal_pb2 as pb

    def chunk(record) -> bytes:
        data = record.SerializeToString()
        return struct.pack("<IHB", 0, len(data), 1) + data  # crc (unchecked), length, FULL

    history = pb.Record()
    history.history.item.add(key="train/loss", value_json="0.5")
    exit_record = pb.Record()
    exit_record.exit.exit_code = 0
    exit_record.exit.runtime = 12345
    whole = b":W&B" + b"\x00" * 3 + chunk(history) + chunk(exit_record)
    path = tmp_path / "run-x.wandb"
    path.write_bytes(whole[:-2])  # the exit record's chunk header is on disk, not all of its bytes
    partial = read_offline_run(path)
    assert partial.history == [{"train/loss": 0.5}] and partial.exit_code is None
    path.write_bytes(whole)
    assert read_offline_run(path).exit_code == 0
