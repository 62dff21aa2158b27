"""Data faults a user (or a stray file) puts in front of the platform: each ends in one paragraph or one warning
that names the file, never a traceback, a hang or a silent loss (issue 20: readers, cache build, splits, batches).

Small synthetic trees in the public formats (gaitgraph/data/synthetic.py), read in this process; the FIFO runs the
cache command in a process of its own (forked, tests/forked.py), since a regression would block for ever and only a
timeout can say so.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from gaitgraph.cli import OutputCheck
from gaitgraph.data.batches import WindowBatches
from gaitgraph.data.cache import load_poses
from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.pkl import PosePklReader
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.data.splits import split_by_subjects
from gaitgraph.data.synthetic import generate_casia_b, generate_casia_b_pkl
from gaitgraph.engine.build import Splits, build_trainer
from gaitgraph.engine.distributed import DistContext
from gaitgraph.errors import ConfigError, DatasetFormatError, MemoryBudgetError, NotWritableError
from gaitgraph.utils import atomic_write, check_writable
from tests.conftest import compose_train, skeleton
from tests.forked import fork_app

CSV = "casia-b_pose_coco.csv"
PKL_LAYOUT = r"(?P<subject>\d{3})/(?P<condition>[a-z]+)-(?P<seq>\d{2})/(?P<view>\d{3})"
PSYMO10 = Path(__file__).resolve().parents[2] / "data" / "psymo10" / "skeletons"


@pytest.fixture
def casia(tmp_path: Path) -> Path:
    """A CASIA-B CSV of 3 subjects x 2 nm walks x 2 views (16-24 frames each)."""
    return generate_casia_b(tmp_path / "casia-b" / CSV, n_subjects=3, n_views=2, frames=20, conditions={"nm": 2})


@pytest.fixture
def pkl_tree(tmp_path: Path) -> Path:
    """A CASIA-B-Pose pickle tree of 3 subjects x 1 walk x 2 views."""
    return generate_casia_b_pkl(tmp_path / "pkl", n_subjects=3, n_views=2, frames=16, conditions={"nm": 1})


def _casia_cfg(root: Path, *overrides: str):
    return compose_train(["dataset=synthetic", f"dataset.reader.root={root}", *overrides]).dataset


def _replace_field(path: Path, line: int, column: int, value: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    fields = lines[line - 1].split(b",")
    fields[column] = value
    lines[line - 1] = b",".join(fields)
    path.write_bytes(b"\n".join(lines))


# --- a folder that cannot be written -------------------------------------------------------------------------


def test_output_folder_behind_a_file_is_one_paragraph(tmp_path: Path, capsys):
    blocker = tmp_path / "outputs"
    blocker.write_text("not a folder")
    cfg = compose_train([f"paths.output_root={blocker}"], return_hydra_config=True)
    with pytest.raises(SystemExit) as stop:
        OutputCheck().on_run_start(cfg)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"folder not writable: {blocker}/") and "Traceback" not in err
    assert f"since {blocker} is a file, not a folder" in err and "paths.output_root" in err
    assert blocker.read_text() == "not a folder"


def test_read_only_or_forbidden_folder_is_named(tmp_path: Path, monkeypatch):
    check_writable(tmp_path / "new" / "run")  # absent below a writable folder: fine, and nothing is created
    assert not (tmp_path / "new").exists()
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(NotWritableError, match=rf"{tmp_path}/new/run: .*{tmp_path} is not writable by this user"):
        check_writable(tmp_path / "new" / "run", "paths.cache_dir")


def test_atomic_write_into_a_file_is_not_a_traceback(tmp_path: Path):
    (tmp_path / "cache").write_text("")
    with pytest.raises(NotWritableError, match=r"cache/x\.json: cannot be written .*paths\.cache_dir"):
        atomic_write(tmp_path / "cache" / "x.json", lambda tmp: tmp.write_text("{}"))


# --- bytes and names that are not UTF-8 ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value", "where", "found"),
    [
        (3, b"1.2\xff3", "line 6 column nose_conf", r"the byte 0xff in '1.2\xff3'"),
        (0, b"./001-nm-01-000/00\xe90001.jpg", "line 6 column image_name", "the byte 0xe9 in"),
    ],
)
def test_non_utf8_byte_in_csv_names_line_column_and_byte(casia: Path, column, value, where, found):
    _replace_field(casia, 6, column, value)
    with pytest.raises(DatasetFormatError) as err:
        CasiaBReader(casia.parent).read()
    assert str(err.value).startswith(f"{casia}: {where}: expected UTF-8 text, found {found}")


def test_non_utf8_file_name_is_refused_readably(pkl_tree: Path, tmp_path: Path):
    folder = pkl_tree / "002" / "nm-01" / "018"
    os.rename(os.fsencode(folder), os.fsencode(folder.parent) + b"/0\xff8")
    with pytest.raises(DatasetFormatError) as err:
        PosePklReader(pkl_tree, PKL_LAYOUT).read()
    text = str(err.value)
    assert text.startswith(f"{pkl_tree}/002/nm-01: entry '0\\xff8': expected file and folder names in UTF-8")
    assert "0xff" in text and "rename it" in text
    # what failed before: the log file (strict UTF-8) taking the message
    handler = logging.FileHandler(tmp_path / "train.log", encoding="utf-8")
    handler.handleError = lambda record: pytest.fail("the log handler could not write the message")
    handler.emit(logging.makeLogRecord({"msg": text, "levelno": logging.ERROR}))
    handler.close()
    assert "0\\xff8" in (tmp_path / "train.log").read_text()


# --- nothing left after min_frames ---------------------------------------------------------------------------


def test_every_sequence_shorter_than_min_frames(casia: Path, tmp_path: Path):
    cfg = _casia_cfg(casia.parent, "dataset.reader.min_frames=1000")
    with pytest.raises(DatasetFormatError) as err:
        load_poses(cfg, skeleton("coco17"), tmp_path / "cache")
    text = str(err.value)
    assert text.startswith(f"{casia.parent}: CASIA-B dataset: ")
    lengths = CasiaBReader(casia.parent).read().lengths
    assert f"no sequence left after min_frames=1000: all 12 are shorter (shortest {lengths.min()}, " in text
    assert f"longest {lengths.max()} frames)" in text and "lower dataset.reader.min_frames" in text
    assert [p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")] == []


# --- files that are not regular, links out of the tree -------------------------------------------------------


@pytest.mark.skipif(not PSYMO10.is_dir() or sys.platform == "win32", reason="needs data/psymo10 and mkfifo")
def test_fifo_in_the_tree_does_not_block_the_cache_build(tmp_path: Path):
    root = tmp_path / "psymo"
    for subject in ("0", "1"):
        (root / "skeletons" / subject).mkdir(parents=True)
        for walk in sorted((PSYMO10 / subject).glob("*_00_0_*.json")):
            (root / "skeletons" / subject / walk.name).write_bytes(walk.read_bytes())
    os.mkfifo(root / "skeletons" / "1" / "001_45_1_0_nm.json")
    args = [
        "build",
        "dataset=psymo10",
        f"dataset.reader.root={root}",
        f"paths.output_root={tmp_path / 'out'}",
        f"paths.cache_dir={tmp_path / 'cache'}",
    ]
    result = fork_app("gaitgraph.data.cache", args, tmp_path / "logs", cwd=tmp_path, timeout=120)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert f"skipped 1 entries that are not regular files or lead out of the dataset root {root}" in out
    assert f"{root}/skeletons/1/001_45_1_0_nm.json (a FIFO)" in out


def test_links_out_of_the_tree_and_broken_links_are_named_and_skipped(pkl_tree: Path, tmp_path: Path, caplog):
    outside = tmp_path / "elsewhere"
    (pkl_tree / "003").rename(outside)
    (pkl_tree / "003").symlink_to(outside)  # a whole subject folder, linked in from outside
    inside = pkl_tree / "001" / "nm-01" / "018"
    (inside / "018.pkl").rename(inside / "real.bin")
    (inside / "018.pkl").symlink_to(inside / "real.bin")  # a link inside the tree is read
    (pkl_tree / "002" / "nm-01" / "000" / "000.pkl").unlink()
    (pkl_tree / "002" / "nm-01" / "000" / "000.pkl").symlink_to(pkl_tree / "gone.pkl")
    with caplog.at_level(logging.WARNING):
        poses = PosePklReader(pkl_tree, PKL_LAYOUT).read()
    assert sorted(poses.meta["source"]) == ["001/nm-01/000", "001/nm-01/018", "002/nm-01/018"]
    [warning] = [m for m in caplog.messages if "skipped" in m]
    assert f"skipped 2 entries that are not regular files or lead out of the dataset root {pkl_tree}" in warning
    assert f"{pkl_tree}/003 (a link out of the dataset, to {outside})" in warning
    assert f"{pkl_tree}/002/nm-01/000/000.pkl (a broken link)" in warning


def test_csv_that_is_a_fifo_is_refused(tmp_path: Path):
    (tmp_path / "casia-b").mkdir()
    os.mkfifo(tmp_path / "casia-b" / CSV)
    with pytest.raises(DatasetFormatError, match="expected the CASIA-B pose CSV as a regular file, found a FIFO"):
        CasiaBReader(tmp_path / "casia-b").files()


def test_psymo_reads_only_regular_json_files(tmp_path: Path):
    (tmp_path / "skeletons" / "1").mkdir(parents=True)
    os.mkfifo(tmp_path / "skeletons" / "1" / "001_00_0_0_nm.json")
    with pytest.raises(DatasetFormatError, match="skeletons/<ID>/\\*.json files, found none"):
        PsyMoReader(tmp_path).units()  # the FIFO is no file to read, so the tree holds none


# --- silent losses: listed subjects without data, copies under two ids ---------------------------------------


def test_listed_subjects_without_sequences_are_named(casia: Path, tmp_path: Path, caplog):
    poses = load_poses(_casia_cfg(casia.parent), skeleton("coco17"), tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        parts = split_by_subjects(poses, {"train_subjects": [1, 2, 7, 8], "test_subjects": [3]})
    assert len(parts["train"]) == 8 and len(parts["test"]) == 4
    [warning] = [m for m in caplog.messages if "lists" in m]
    assert warning.startswith("dataset.split.train_subjects lists 2 of its 4 subjects without any sequence")
    assert warning.endswith(": 7, 8")


def test_byte_identical_sequences_under_two_subjects_warn_once(casia: Path, tmp_path: Path, caplog):
    lines = casia.read_text().splitlines()
    copied = [line.replace("./001-nm-01-000/", "./003-nm-02-018/", 1) for line in lines if "./001-nm-01-000/" in line]
    kept = [line for line in lines if "./003-nm-02-018/" not in line]
    casia.write_text("\n".join(kept + copied) + "\n")
    with caplog.at_level(logging.WARNING):
        poses = load_poses(_casia_cfg(casia.parent), skeleton("coco17"), tmp_path / "cache")
        load_poses(_casia_cfg(casia.parent), skeleton("coco17"), tmp_path / "cache")  # cached: said once
    assert len(poses) == 12
    [warning] = [m for m in caplog.messages if "byte-identical" in m]
    assert "CASIA-B: 1 sequences are byte-identical to a sequence of another subject" in warning
    assert warning.endswith("subject 1 (001-nm-01-000) = subject 3 (003-nm-02-018)")


# --- a batch larger than the training split ------------------------------------------------------------------


def _toy(n: int) -> PoseSet:
    rng = np.random.default_rng(0)
    seqs = [rng.uniform(0, 1, (20, 17, 3)) for _ in range(n)]
    meta = [{"subject": i % 3, "condition": "nm", "seq": i, "view": "000", "source": f"s{i}"} for i in range(n)]
    return PoseSet.from_sequences(seqs, meta)


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_larger_than_the_split_is_a_config_error(drop_last: bool):
    with pytest.raises(ConfigError) as caught:
        WindowBatches(_toy(10), 16, batch_size=100_000, seed=0, drop_last=drop_last)
    message = str(caught.value)
    assert message.startswith("trainer.batch_size=100000: expected at most 10, the sequences of the training split")
    assert "set trainer.batch_size=10 or lower" in message
    assert ("no batch of 100000 can be filled" in message) is drop_last
    whole = WindowBatches(_toy(10), 16, batch_size=10, seed=0, drop_last=drop_last)  # the whole split, as asked
    assert [len(labels) for _, labels in whole] == [10]


def test_batch_larger_than_the_split_is_refused_before_the_memory_estimate(tmp_path: Path):
    # A memory limit no batch fits: the estimate would refuse it as "GB needed"; the batch is refused first.
    cfg = compose_train(["trainer.memory.limit_gb=0.000001", "trainer.batch_size=100000", "trainer.device=cpu"])
    splits = Splits(_toy(10), None, _toy(3), None, "val/rank1")
    with pytest.raises(ConfigError, match=r"^trainer\.batch_size=100000: expected at most 10"):
        build_trainer(DistContext(), cfg, tmp_path, splits, skeleton("coco17"), torch.device("cpu"), None, None)
    cfg.trainer.batch_size = 10
    with pytest.raises(MemoryBudgetError, match="GB"):  # a batch that fits the split reaches the estimate
        build_trainer(DistContext(), cfg, tmp_path, splits, skeleton("coco17"), torch.device("cpu"), None, None)
