"""What a run writes when its output goes to a file (nohup, SLURM, ``> log 2>&1``): whole lines only, progress as
occasional lines with an ETA, the results table once; and what its trackers hold afterwards. One real training run
in a process of its own (forked, tests/forked.py) writing to a file, since whether stderr is a terminal is the
point."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gaitgraph.errors import ConfigError
from gaitgraph.progress import LineProgress, duration, every, mode

from .forked import fork_app

#: A log record's start, as Hydra's console handler writes it.
RECORD = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]\[[\w.]+\]\[[A-Z]+\] - ")
#: A progress line: ``desc: n/total units (p%)[, postfix] | elapsed[, ETA]``.
PROGRESS = re.compile(r"[A-Za-z][\w ]*: \d+(/\d+ \w+ \(\d+%\)| \w+)(, .*)? \| \w+ elapsed(, ETA \w+)?")
TABLE_TITLE = "psymo10 test, rank-1 % (ResGCN)"


@pytest.fixture(scope="module")
def piped(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> tuple[str, Path]:
    """(the whole output, the run directory) of ``debug=fdr`` with CSV and TensorBoard, stdout and stderr to one
    file, a progress line at every update (``GAITGRAPH_PROGRESS_EVERY=0``)."""
    root = tmp_path_factory.mktemp("piped")
    run_dir = root / "run"
    env = {"GAITGRAPH_PROGRESS_EVERY": "0", "GAITGRAPH_PROGRESS": None}
    args = ["debug=fdr", "logger=[csv,tensorboard]", "trainer.device=cpu", "model=resgcn_n21_r8"]
    args += [f"hydra.run.dir={run_dir}", f"paths.cache_dir={shared_cache}"]
    done = fork_app("gaitgraph.train", args, root / "log", env=env, merged=True)
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout, run_dir


@pytest.mark.slow
def test_a_piped_log_has_whole_lines_one_table_and_progress_with_an_eta(piped):
    text, _ = piped
    assert "\r" not in text and "\x1b" not in text, "no carriage returns or escape sequences (bars, cursor moves)"
    assert text.count(TABLE_TITLE) == 1, "the results table is printed once"
    for line in text.splitlines():
        if RECORD.search(line):
            assert RECORD.match(line), f"a log record glued to other output: {line!r}"
        if " elapsed" in line:
            assert PROGRESS.fullmatch(line), f"not a whole progress line: {line!r}"
    train = [line for line in text.splitlines() if line.startswith("train: ")]
    assert train[0].startswith("train: 1/2 steps (50%), epoch 1/1, loss ") and ", ETA " in train[0]
    assert train[-1].startswith("train: 2/2 steps (100%)") and "ETA" not in train[-1]
    assert any(line.startswith("embed: ") for line in text.splitlines())


@pytest.mark.slow
def test_the_piped_runs_trackers_have_hparams_steps_and_one_point_per_step(piped):
    _, run_dir = piped
    table = pd.read_csv(run_dir / "metrics.csv")
    assert table["step"].notna().all(), "every CSV row has a step"
    assert table.loc[table["train/lr"].notna(), "step"].tolist() == [1, 2]
    assert table["test/mean_rank1"].dropna().between(0, 100).all() and table["test/mean_rank1"].dropna().max() > 1
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    for key in ("train/lr", "train/samples_per_s", "train/loss"):
        assert [e.step for e in events.Scalars(key)] == [1, 2], key
    assert [e.step for e in events.Scalars("val/rank1")] == [2]
    assert events.PluginTagToContent("hparams"), "TensorBoard's HParams tab has the run"
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    assert b"resgcn_n21_r8" in content and b"psymo10" in content
    with Image.open(run_dir / "curves.png") as image:  # the picture says what ran, not when
        assert image.info["Title"] == "resgcn_n21_r8 on psymo10: training curves (debug)"


def test_progress_lines_and_their_settings(monkeypatch, capsys):
    monkeypatch.setenv("GAITGRAPH_PROGRESS", "lines")
    monkeypatch.setenv("GAITGRAPH_PROGRESS_EVERY", "50%")
    assert mode() == "lines" and every() == (0.0, 50.0)
    with LineProgress(total=4, desc="train", unit="step") as bar:
        for _ in range(4):
            bar.set_postfix(loss="1.000")
            bar.update(1)
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(" |")[0] for line in lines] == [
        "train: 2/4 steps (50%), loss 1.000",
        "train: 4/4 steps (100%), loss 1.000",
    ]
    assert "ETA" in lines[0] and "ETA" not in lines[1]
    monkeypatch.setenv("GAITGRAPH_PROGRESS_EVERY", "30")
    with LineProgress(range(3), desc="embed", unit="batch") as bar:
        assert list(bar) == [0, 1, 2]
    assert capsys.readouterr().err == "", "a loop shorter than the interval writes nothing"
    assert (duration(45), duration(125), duration(3 * 3600 + 240)) == ("45s", "2m05s", "3h04m")
    for name, value in (("GAITGRAPH_PROGRESS", "fancy"), ("GAITGRAPH_PROGRESS_EVERY", "often")):
        monkeypatch.setenv(name, value)
        with pytest.raises(ConfigError, match=name):
            mode() if name == "GAITGRAPH_PROGRESS" else every()
        monkeypatch.delenv(name)
