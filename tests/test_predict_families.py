"""``gaitgraph.predict`` for every model family: a tiny model of each (random weights, saved by the training
checkpointer) enrols two PsyMo-10 subjects and identifies one of them again; each probe finds itself (distance 0)
and so its own subject first, part-based GPGait embeddings [S, D, P] included. Galleries that cannot be ranked
against (NaN values, no sequence) are refused with the file named."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict

from gaitgraph import ROOT
from gaitgraph.data.formats import FORMATS, detect_format
from gaitgraph.engine.checkpoint import Checkpointer
from gaitgraph.errors import ConfigError, DatasetFormatError
from gaitgraph.evaluation.embedding_store import read_embeddings
from gaitgraph.models import build_model

from . import toys
from .conftest import compose_train, skeleton
from .predict_runs import run_predict

SKELETONS = ROOT / "data" / "psymo10" / "skeletons"
#: model option -> overrides that make it tiny (the family's structure, fewer and narrower layers).
FAMILIES = {
    "gaitgraph1": ["model.input_branch=[3,32,32]", "model.main_stream=[32,64,64]", "model.embedding_size=32"],
    "gaittr": ["model.in_channels=[10,32,64]", "model.embedding_size=32"],
    "gpgait": ["model.in_channels=[2,16,16,32]", "model.share_num=1", "model.num_classes=8"],
    "resgcn_n21_r8": ["model.embedding_size=32"],
}


def _checkpoint(folder: Path, option: str) -> Path:
    """A randomly initialised ``option`` model on the PsyMo-10 config, written as training writes best.pt."""
    cfg = compose_train([f"model={option}", *FAMILIES[option], "dataset.sequence_length=30"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(folder.parent)
    model = build_model(cfg.model, instantiate(cfg.keypoints))
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained zoo model maps every walk to nearly one direction: spread them apart
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    state = {"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}
    return Checkpointer(folder).save(state, "best.pt")


def _walks(dest: Path, subjects: tuple[int, ...], count: int = 4) -> list[str]:
    """A copy of the first ``count`` walk files of each subject, one ``<ID>/`` folder each."""
    for subject in subjects:
        (dest / str(subject)).mkdir(parents=True)
        for walk in sorted((SKELETONS / str(subject)).glob("*.json"))[:count]:
            shutil.copy2(walk, dest / str(subject) / walk.name)
    return [str(dest / str(s)) for s in subjects]


def _predict(run_dir: Path, ckpt: Path, *overrides: str) -> dict[str, Path]:
    return run_predict(run_dir, [f"ckpt_path={ckpt}", "trainer.device=cpu", "trainer.num_threads=1"], *overrides)


@pytest.fixture(scope="module")
def enrolled(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, list[str]]]:
    """Per family: (checkpoint, gallery embeddings.h5 of subjects 7 and 8, the probe folder of subject 7)."""
    root = tmp_path_factory.mktemp("families")
    folders = _walks(root / "walks", (7, 8))
    out = {}
    for option in FAMILIES:
        ckpt = _checkpoint(root / option / "checkpoints", option)
        gallery = _predict(root / option / "enrol", ckpt, f"input=[{','.join(folders)}]")["embeddings"]
        out[option] = (ckpt, gallery, folders)
    return out


@pytest.mark.parametrize("option", FAMILIES)
def test_predict_identifies_with_every_family(tmp_path: Path, enrolled, option: str):
    ckpt, gallery, folders = enrolled[option]
    embeddings, meta, _ = read_embeddings(gallery)
    assert len(meta) == 8 and set(meta["subject"]) == {7, 8}
    assert embeddings.ndim == (3 if option == "gpgait" else 2)  # GPGait: 19 part embeddings per sequence
    for distance in ("euclidean", "cosine"):
        probe = [f"input={folders[0]}", f"gallery={gallery}", f"distance={distance}"]
        written = _predict(tmp_path / distance, ckpt, *probe)
        table = pd.read_csv(written["identities"])
        assert len(table) == 4 and (table["identity_1"] == 7).all() and (table["identity_2"] == 8).all()
        assert np.allclose(table["distance_1"], 0.0, atol=1e-3), table["distance_1"].tolist()  # itself
        assert (table["distance_1"] * 10 < table["distance_2"]).all()  # the other subject is clearly farther


def test_a_gallery_with_nan_embeddings_is_refused(tmp_path: Path, enrolled):
    ckpt, gallery, folders = enrolled["gpgait"]
    broken = tmp_path / "nan.h5"
    shutil.copy2(gallery, broken)
    with h5py.File(broken, "a") as f:
        f["embeddings"][2] = np.nan
    with pytest.raises(DatasetFormatError, match=r"nan\.h5: embeddings row 2 .*expected finite values, found NaN"):
        _predict(tmp_path / "run", ckpt, f"input={folders[0]}", f"gallery={broken}")


def test_an_empty_gallery_is_refused(tmp_path: Path, enrolled):
    ckpt, gallery, folders = enrolled["resgcn_n21_r8"]
    empty = tmp_path / "empty.h5"
    shutil.copy2(gallery, empty)
    with h5py.File(empty, "a") as f:
        data = f["embeddings"][:0]
        del f["embeddings"]
        f.create_dataset("embeddings", data=data)
        for column in list(f["meta"]):
            values = f["meta"][column][:0]
            del f["meta"][column]
            f["meta"].create_dataset(column, data=values, dtype=values.dtype)
    with pytest.raises(ConfigError, match=r"gallery=.*empty\.h5.*: expected an embeddings.h5 holding at least one"):
        _predict(tmp_path / "run", ckpt, f"input={folders[0]}", f"gallery={empty}")


def test_predict_reads_a_pose_format_registered_by_a_test_module(tmp_path: Path, enrolled):
    """tests/toys.py registers ``toy_npy``; the same walks written as toy files are found (auto) and read into the
    same poses as the PsyMo files they came from: each identifies itself in the PsyMo-enrolled gallery."""
    ckpt, gallery, folders = enrolled["resgcn_n21_r8"]
    raw = FORMATS["psymo"].open(Path(folders[0]), {}, skeleton("coco17")).read()
    (tmp_path / "toy").mkdir()
    for i in range(len(raw)):
        np.save(tmp_path / "toy" / f"7_{i}.toy.npy", raw.sequence(i))
    assert detect_format(tmp_path / "toy") == toys.TOY_FORMAT.name
    for input_format in ("auto", "tests.toys:toy_npy"):
        run = [f"input={tmp_path / 'toy'}", f"input_format={input_format}", f"gallery={gallery}"]
        table = pd.read_csv(_predict(tmp_path / input_format, ckpt, *run)["identities"])
        assert len(table) == len(raw) == 4 and (table["identity_1"] == 7).all()
        assert np.allclose(table["distance_1"], 0.0, atol=1e-3)
        assert (table["distance_1"] * 10 < table["distance_2"]).all()
    with pytest.raises(ConfigError, match=r"input_format='no_such_module:toy_npy': expected <module>:<format>"):
        _predict(tmp_path / "bad", ckpt, f"input={tmp_path / 'toy'}", "input_format=no_such_module:toy_npy")
