"""``gaitgraph-eval`` / ``python -m gaitgraph.evaluate`` on the session's run trained on the embedded PsyMo-10 data
(tests/conftest.py ``trained_run``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from gaitgraph.engine.restore import effective_group, read_checkpoint
from gaitgraph.errors import CheckpointError, ConfigError
from gaitgraph.evaluation.metrics_file import KEYS

from .conftest import TrainedRun, compose_train, run_app, run_console
from .no_drawing import skip_drawing


def _evaluate(tmp_path: Path, run: TrainedRun, *extra: str, console: bool = False) -> tuple[Path, object]:
    """Evaluate the shared run's best.pt: through the ``gaitgraph-eval`` console script in a new process, or its
    Hydra app in this one."""
    run_dir = tmp_path / ("tta" if "tta=true" in extra else "plain")
    args = [
        f"ckpt_path={run.ckpt}",
        f"paths.output_root={tmp_path}",
        f"paths.cache_dir={run.cache}",
        f"hydra.run.dir={run_dir}",
        "trainer.num_threads=1",  # auto takes every core: on shared cores the waiting threads cost more than they add
        *extra,
    ]
    done = run_console("gaitgraph-eval", args, cwd=tmp_path) if console else run_app("gaitgraph.evaluate", args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return run_dir, done


@pytest.mark.slow
def test_entry_point_reproduces_train_metric_and_tta(
    tmp_path: Path, trained_run: TrainedRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    train_metric = trained_run.metrics["test"]["psymo10"]["mean_rank1"]
    plain_dir, plain = _evaluate(tmp_path, trained_run, console=True)  # the console script's smoke test
    skip_drawing(monkeypatch)  # the TTA run in this process writes an empty heatmap; the console's is drawn
    tta_dir, tta = _evaluate(tmp_path, trained_run, "tta=true")
    for run_dir, done in ((plain_dir, plain), (tta_dir, tta)):
        for rel in ("metrics.json", "eval/results.csv", "eval/results.json", "eval/heatmap.png", ".hydra/config.yaml"):
            assert (run_dir / rel).is_file(), f"missing {rel}"
        assert "psymo10 test, rank-1 %" in done.stdout and "wss" in done.stdout  # the table reached the terminal
    plain_metrics = json.loads((plain_dir / "metrics.json").read_text())
    tta_metrics = json.loads((tta_dir / "metrics.json").read_text())
    # Same weights, same data config (stored in the checkpoint, its sequence_length included): same number.
    assert plain_metrics["metric"] == pytest.approx(train_metric, abs=1e-9)
    assert plain_metrics["tta"] is False and tta_metrics["tta"] is True
    # One schema for both commands (gaitgraph/evaluation/metrics_file.py): the same keys, in the same order.
    assert list(plain_metrics) == list(trained_run.metrics) == list(KEYS)
    assert (trained_run.metrics["job"], plain_metrics["job"]) == ("train", "eval")
    assert plain_metrics["ckpt_path"] == trained_run.metrics["ckpt_path"] == str(trained_run.ckpt.resolve())
    assert plain_metrics["ckpt_epoch"] == trained_run.metrics["ckpt_epoch"] is not None
    # chance of the split each number reads: val/rank1 of training (2 subjects), the test rank-1 (4 subjects)
    assert (trained_run.metrics["chance"], plain_metrics["chance"]) == (pytest.approx(1 / 2), pytest.approx(1 / 4))
    assert tta_metrics["metric"] != plain_metrics["metric"]  # other embeddings, scored on the same protocol
    assert plain_metrics["test"]["psymo10"]["table"].keys() == tta_metrics["test"]["psymo10"]["table"].keys()
    assert "TTA" in tta.stdout


def test_entry_point_errors_name_the_problem(tmp_path: Path) -> None:
    missing = run_app("gaitgraph.evaluate", [f"paths.output_root={tmp_path}"])
    assert missing.returncode != 0 and "ckpt_path=None: expected a checkpoint file" in missing.stderr
    bogus = tmp_path / "notes.pt"
    bogus.write_text("not a checkpoint")
    bad = run_app("gaitgraph.evaluate", [f"ckpt_path={bogus}", f"paths.output_root={tmp_path}"])
    assert bad.returncode != 0 and "not a readable checkpoint" in bad.stderr and str(bogus) in bad.stderr


def test_read_checkpoint_rejects_missing_and_foreign_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="ckpt_path=None: expected a checkpoint file"):
        read_checkpoint(None)
    with pytest.raises(CheckpointError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "absent.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        read_checkpoint(tmp_path / "text.pt")
    torch.save({"state_dict": {}}, tmp_path / "lightning.pt")
    with pytest.raises(CheckpointError, match=r"keys \['model', 'config'\]; found keys \['state_dict'\]"):
        read_checkpoint(tmp_path / "lightning.pt")
    torch.save({"model": {}, "config": {"model": {}}}, tmp_path / "partial.pt")
    with pytest.raises(CheckpointError, match=r"lacks the groups \['keypoints', 'dataset'\]"):
        read_checkpoint(tmp_path / "partial.pt")


def test_stored_config_wins_unless_the_command_line_chooses_or_edits() -> None:
    composed = compose_train(["dataset=casia_b", "dataset.sequence_length=90"])
    stored = {"dataset": {"name": "psymo10", "sequence_length": 30, "split": {"test_subjects": [6]}}}
    assert effective_group("dataset", composed, stored, []).sequence_length == 30
    assert effective_group("dataset", composed, stored, ["tta=true"]).name == "psymo10"
    edited = effective_group("dataset", composed, stored, ["dataset.sequence_length=90"])
    assert (edited.name, edited.sequence_length) == ("psymo10", 90)
    chosen = effective_group("dataset", composed, stored, ["dataset=casia_b", "dataset.sequence_length=90"])
    assert (chosen.name, chosen.sequence_length) == ("casia_b", 90)
    assert OmegaConf.select(chosen, "reader._target_").endswith("CasiaBReader")
