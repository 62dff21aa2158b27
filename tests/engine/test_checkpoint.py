"""Checkpoints are never lost: finite states only, atomic, the previous one kept, a full disk reported; resume
falls back to the previous checkpoint and refuses another recipe; a used run directory is refused."""

from __future__ import annotations

import errno
import hashlib
import logging
from pathlib import Path

import pytest
import torch

from gaitgraph.engine import checkpoint as ckpt
from gaitgraph.engine.checkpoint import Checkpointer, check_run_dir, recipe_differences, resume_checkpoint
from gaitgraph.engine.state import CHECKPOINT_FORMAT
from gaitgraph.errors import CheckpointError, DiskFullError, NonFiniteError, RunDirInUseError
from gaitgraph.utils import load_checkpoint

from ..payload import CodePayload


def _state(step: int, value: float = 1.0, config: dict | None = None) -> dict:
    return {
        "format": CHECKPOINT_FORMAT,
        "model": {"w": torch.full((3,), value)},
        "optimizer": {"state": {}},
        "scaler": None,
        "step": step,
        "epoch": 0,
        "config": config or {"trainer": {"epochs": 2}},
    }


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_a_non_finite_state_is_never_written_and_the_last_good_one_stays(tmp_path: Path):
    writer = Checkpointer(tmp_path)
    writer.save(_state(3), "last.pt")
    before = _digest(tmp_path)
    with pytest.raises(NonFiniteError, match=r"step 4: .*model\.w.*last\.pt was not written.*last\.pt \(step 3\)"):
        writer.save(_state(4, float("nan")), "last.pt")
    assert _digest(tmp_path) == before
    optimizer_nan = {**_state(5), "optimizer": {"state": {0: {"exp_avg": torch.tensor([float("inf")])}}}}
    with pytest.raises(NonFiniteError, match="optimizer.state.0.exp_avg"):
        writer.save(optimizer_nan, "last.pt")
    assert _digest(tmp_path) == before


def test_one_state_saved_under_two_names_is_serialised_once_and_keeps_previous(tmp_path: Path, monkeypatch):
    writer = Checkpointer(tmp_path)
    writer.save(_state(1, 1.0), "last.pt")
    calls = []
    real_save = torch.save
    monkeypatch.setattr(torch, "save", lambda *a, **k: calls.append(1) or real_save(*a, **k))
    assert writer.save(_state(2, 2.0), "last.pt", "best.pt") == tmp_path / "last.pt"
    assert len(calls) == 1
    assert (tmp_path / "best.pt").read_bytes() == (tmp_path / "last.pt").read_bytes()
    assert torch.load(tmp_path / "previous.pt", weights_only=True)["step"] == 1
    assert writer.last_good == (tmp_path / "last.pt", 2)


def test_best_is_read_back_from_memory_while_the_file_is_what_was_written(tmp_path: Path, monkeypatch):
    writer = Checkpointer(tmp_path)
    state = _state(2, 2.0)
    state["epoch"] = 7
    writer.save(state, "last.pt", "best.pt")
    state["model"]["w"].add_(1.0)  # training goes on in place: the copy keeps the values that were written
    monkeypatch.setattr(ckpt, "load_checkpoint", lambda path: pytest.fail(f"{path} read from disk"))
    best = writer.read("best.pt")
    assert best["epoch"] == 7 and torch.equal(best["model"]["w"], load_checkpoint(tmp_path / "best.pt")["model"]["w"])
    assert torch.equal(best["model"]["w"], torch.full((3,), 2.0))
    monkeypatch.undo()
    # Replaced by anything else (another writer, a copy): the file is read again.
    Checkpointer(tmp_path / "other").save(_state(9, 9.0), "best.pt")
    (tmp_path / "other" / "best.pt").replace(tmp_path / "best.pt")
    assert torch.equal(writer.read("best.pt")["model"]["w"], torch.full((3,), 9.0))
    assert Checkpointer(tmp_path).read("best.pt")["step"] == 9  # a checkpointer that wrote nothing reads the file


def test_the_finiteness_check_names_exactly_the_non_finite_values():
    state = {
        "big": torch.full((4,), 3e38),  # finite, though its sum overflows
        "wide": torch.tensor([1e300, -1e300], dtype=torch.float64),
        "steps": torch.tensor([1, 2]),
        "half": torch.tensor([1.0, float("-inf")], dtype=torch.float16),
        "nested": [0.5, {"lr": float("nan"), "w": torch.tensor([float("inf"), float("-inf")])}],
    }
    assert ckpt.non_finite_keys(state) == ["half", "nested.1.lr", "nested.1.w"]
    assert ckpt.non_finite_keys({k: state[k] for k in ("big", "wide", "steps")}) == []


def test_the_previous_last_is_kept_and_resume_falls_back_to_it(tmp_path: Path, caplog):
    writer = Checkpointer(tmp_path / "checkpoints")
    writer.save(_state(1, 1.0), "last.pt")
    writer.save(_state(2, 2.0), "last.pt")
    folder = tmp_path / "checkpoints"
    assert torch.load(folder / "previous.pt", weights_only=True)["step"] == 1
    assert torch.load(folder / "last.pt", weights_only=True)["step"] == 2
    # A truncated newest checkpoint: resume says so and takes the previous one.
    data = (folder / "last.pt").read_bytes()
    (folder / "last.pt").write_bytes(data[: len(data) // 2])
    assert ckpt.resume_path("auto", tmp_path) == folder / "last.pt"
    with caplog.at_level(logging.WARNING):
        saved = resume_checkpoint(folder / "last.pt", _state(0)["config"])
    assert saved["step"] == 1 and "resuming from the previous checkpoint" in caplog.text
    (folder / "last.pt").unlink()
    assert ckpt.resume_path("auto", tmp_path) == folder / "previous.pt"


def test_a_full_disk_names_the_file_and_leaves_the_old_checkpoint(tmp_path: Path, monkeypatch):
    writer = Checkpointer(tmp_path)
    writer.save(_state(1), "last.pt")
    before = _digest(tmp_path)

    def full(self: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    with pytest.raises(DiskFullError, match=r"last\.pt: the write failed for lack of space.*intact"):
        writer.save(_state(2), "last.pt")
    monkeypatch.undo()
    assert _digest(tmp_path) == before  # no temp file left behind either


def test_recipe_differences_ignore_operational_keys():
    stored = {
        "trainer": {"epochs": 6, "batch_size": 96, "resume": None, "num_threads": None},
        "logger": {"mode": "offline"},
        "model": {"structure": [1, 1, 1, 1]},
        "paths": {"output_root": "/a"},
    }
    current = {
        "trainer": {"epochs": 8, "batch_size": 64, "resume": "auto", "num_threads": 2},
        "logger": {"mode": "online"},
        "model": {"structure": [2, 1, 1, 1]},
        "paths": {"output_root": "/b"},
        "optimized_metric": "val/rank1",
    }
    keys = [k for k, _, _ in recipe_differences(stored, current)]
    assert keys == ["model.structure", "optimized_metric", "trainer.batch_size", "trainer.epochs"]


def test_a_checkpoint_written_before_a_key_was_renamed_resumes_under_the_new_name(tmp_path: Path):
    """trainer.activation_checkpointing became trainer.recompute: an older run's stored value is compared as the
    new key, so an equal setting resumes and a different one is refused under the new name."""
    old = {"trainer": {"epochs": 6, "activation_checkpointing": "auto"}}
    assert recipe_differences(old, {"trainer": {"epochs": 6, "recompute": "auto"}}) == []
    assert recipe_differences(old, {"trainer": {"epochs": 6, "recompute": True}}) == [
        ("trainer.recompute", "auto", True)
    ]
    Checkpointer(tmp_path).save(_state(1, config=old), "last.pt")
    assert resume_checkpoint(tmp_path / "last.pt", {"trainer": {"epochs": 6, "recompute": "auto"}})["step"] == 1


def test_resume_refuses_another_recipe_listing_the_keys(tmp_path: Path):
    Checkpointer(tmp_path).save(_state(1, config={"trainer": {"epochs": 6, "batch_size": 96}}), "last.pt")
    with pytest.raises(
        CheckpointError, match=r"recipe differs.*trainer\.batch_size: 96 -> 64; trainer\.epochs: 6 -> 8"
    ):
        resume_checkpoint(tmp_path / "last.pt", {"trainer": {"epochs": 8, "batch_size": 64}})
    torch.save({**_state(1), "format": 1}, tmp_path / "old.pt")
    with pytest.raises(CheckpointError, match="checkpoint format 1"):
        resume_checkpoint(tmp_path / "old.pt", _state(0)["config"])


def test_a_used_run_directory_is_refused_unless_resumed_or_overwritten(tmp_path: Path):
    check_run_dir(tmp_path, None, False)  # empty: fine
    Checkpointer(tmp_path / "checkpoints").save(_state(1), "last.pt")
    (tmp_path / "metrics.json").write_text("{}")
    before = _digest(tmp_path / "checkpoints")
    with pytest.raises(
        RunDirInUseError,
        match=r"checkpoints/last\.pt, metrics\.json.*trainer\.resume=auto.*"
        r"trainer\.overwrite=true",
    ):
        check_run_dir(tmp_path, None, False)
    assert _digest(tmp_path / "checkpoints") == before
    check_run_dir(tmp_path, "auto", False)  # resuming it is what the directory is for
    check_run_dir(tmp_path, None, True)
    assert not (tmp_path / "checkpoints" / "last.pt").exists() and not (tmp_path / "metrics.json").exists()


def test_unreadable_and_unsafe_files_are_checkpoint_errors(tmp_path: Path):
    (tmp_path / "text.pt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="text.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    marker = tmp_path / "pwned"
    torch.save({"model": CodePayload(marker)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="evil.pt: holds pickled Python objects besides the weights"):
        load_checkpoint(tmp_path / "evil.pt")
    assert not marker.exists()
