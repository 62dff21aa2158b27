"""The parts of ``gaitgraph.predict`` that need no model: input formats, identification, the embeddings file."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from gaitgraph import ROOT
from gaitgraph.data.formats import detect_format
from gaitgraph.data.user_poses import read_input
from gaitgraph.errors import ConfigError, DatasetFormatError
from gaitgraph.evaluation.embedding_store import read_embeddings, write_embeddings
from gaitgraph.evaluation.identify import identify, identities_table

from .conftest import compose_train

WALKS = ROOT / "data" / "psymo10" / "skeletons" / "7"


@pytest.fixture(scope="module")
def psymo():
    """(dataset config, skeleton) of the default PsyMo-10 config."""
    cfg = compose_train([])
    return cfg.dataset, instantiate(cfg.keypoints)


def test_detect_format_from_the_path(tmp_path: Path):
    (tmp_path / "psymo" / "skeletons").mkdir(parents=True)
    (tmp_path / "oumvlp" / "alphapose").mkdir(parents=True)
    (tmp_path / "casia").mkdir()
    (tmp_path / "casia" / "poses.csv").write_text("image_name\n")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    assert detect_format(tmp_path / "psymo") == "psymo"
    assert detect_format(WALKS) == "psymo" and detect_format(next(WALKS.glob("*.json"))) == "psymo"
    assert detect_format(tmp_path / "oumvlp") == "oumvlp"
    assert (
        detect_format(tmp_path / "casia") == "casia_b" and detect_format(tmp_path / "casia" / "poses.csv") == "casia_b"
    )
    with pytest.raises(ConfigError, match=r"input='.*other': expected a pose file or folder in a supported format"):
        detect_format(tmp_path / "other")


def test_read_one_walk_and_a_subject_folder_preprocessed_as_the_dataset(psymo):
    dataset_cfg, skeleton = psymo
    walk = next(WALKS.glob("*_nm.json"))
    one = read_input(str(walk), "auto", dataset_cfg, skeleton)
    assert len(one) == 1 and one.meta.loc[0, "source"] == f"7/{walk.name}" and one.meta.loc[0, "subject"] == 7
    # center_scale (the dataset's preprocessing): the hip midpoint of every frame is the origin.
    hips = one.frames[:, skeleton.hips, :2].mean(axis=1)
    assert np.abs(hips).max() < 1e-4
    folder = read_input([str(WALKS)], "psymo", dataset_cfg, skeleton)
    assert set(folder.meta["subject"]) == {7} and len(folder) <= len(list(WALKS.glob("*.json")))
    assert (folder.lengths >= dataset_cfg.reader.min_frames).all()  # the dataset's short-sequence policy


def test_input_errors_name_the_file_and_what_was_expected(tmp_path: Path, psymo):
    dataset_cfg, skeleton = psymo
    with pytest.raises(ConfigError, match=r"input='.*absent': expected an existing pose file or folder"):
        read_input(str(tmp_path / "absent"), "auto", dataset_cfg, skeleton)
    with pytest.raises(ConfigError, match=r"input_format='openpose': expected auto, <module>:<format> or one of"):
        read_input(str(WALKS), "openpose", dataset_cfg, skeleton)
    (tmp_path / "oumvlp" / "openpose").mkdir(parents=True)
    with pytest.raises(ConfigError, match=r"input_format='oumvlp': expected a format with 'coco17' joints"):
        read_input(str(tmp_path / "oumvlp"), "auto", dataset_cfg, skeleton)
    broken = tmp_path / "7" / "007_00_0_0_nm.json"
    broken.parent.mkdir()
    shutil.copy2(next(WALKS.glob("*_nm.json")), broken)
    broken.write_text(broken.read_text()[:100])
    with pytest.raises(DatasetFormatError, match=r"007_00_0_0_nm.json: line 1 column \d+: expected valid JSON"):
        read_input(str(broken), "auto", dataset_cfg, skeleton)


def _brute_force(probes, gallery, ids, distance):
    q = probes / np.linalg.norm(probes, axis=1, keepdims=True)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True)
    d = np.linalg.norm(q[:, None] - g[None], axis=2) if distance == "euclidean" else 1 - q @ g.T
    names = list(dict.fromkeys(ids))
    per_id = np.stack([d[:, np.asarray(ids) == n].min(axis=1) for n in names], axis=1)
    order = np.argsort(per_id, axis=1, kind="stable")
    return np.asarray(names)[order], np.take_along_axis(per_id, order, axis=1)


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_identify_ranks_identities_by_their_nearest_sequence(distance):
    rng = np.random.default_rng(0)
    gallery, probes = rng.normal(size=(30, 8)), rng.normal(size=(11, 8))
    ids = rng.choice(["a", "b", "c", "d", "e"], size=30)
    found, dists = identify(probes.astype(np.float32), gallery.astype(np.float32), ids, top_k=3, distance=distance)
    want_ids, want_d = _brute_force(probes, gallery, ids, distance)
    assert (found == want_ids[:, :3]).all()
    assert np.allclose(dists, want_d[:, :3], atol=1e-5)
    everyone, _ = identify(probes, gallery, ids, top_k=50, distance=distance)
    assert everyone.shape == (11, 5)  # at most as many as the gallery's identities


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_identify_part_based_embeddings_by_the_mean_part_distance(distance):
    """[N, D, P] (GPGait): the mean over parts of each part's distance, as gaitgraph.evaluation.metrics scores them
    (Euclidean on the parts as they are, cosine on unit parts)."""
    rng = np.random.default_rng(1)
    gallery, probes = rng.normal(size=(20, 6, 4)), rng.normal(size=(7, 6, 4))
    ids = rng.choice([3, 5, 8, 13], size=20)
    if distance == "euclidean":
        d = np.linalg.norm(probes[:, None] - gallery[None], axis=2).mean(axis=2)
    else:
        unit = [x / np.linalg.norm(x, axis=1, keepdims=True) for x in (probes, gallery)]
        d = 1 - np.einsum("qdp,gdp->qgp", *unit).mean(axis=2)
    names = list(dict.fromkeys(ids))
    per_id = np.stack([d[:, ids == n].min(axis=1) for n in names], axis=1)
    order = np.argsort(per_id, axis=1, kind="stable")
    found, dists = identify(probes.astype(np.float32), gallery.astype(np.float32), ids, top_k=4, distance=distance)
    assert (found == np.asarray(names)[order]).all()
    assert np.allclose(dists, np.take_along_axis(per_id, order, axis=1), atol=1e-5)
    with pytest.raises(ValueError, match="do not match"):
        identify(probes, gallery[:, :, :3], ids)


def test_identify_ties_go_to_the_identity_enrolled_first():
    gallery = np.array([[0, 1], [1, 0], [1, 0]], dtype=np.float32)
    found, dists = identify(np.array([[1, 0]], dtype=np.float32), gallery, np.array([5, 9, 3]), top_k=3)
    assert found.tolist() == [[9, 3, 5]] and dists[0, :2].tolist() == [0.0, 0.0]


def test_identities_table_one_row_per_probe():
    meta = pd.DataFrame({"subject": [1, 2], "source": ["a", "b"]})
    table = identities_table(meta, np.array([[1, 2], [2, 1]]), np.array([[0.1, 0.2], [0.3, 0.4]]))
    assert list(table.columns) == [
        "probe_subject",
        "probe_source",
        "identity_1",
        "distance_1",
        "identity_2",
        "distance_2",
    ]
    assert table["identity_1"].tolist() == [1, 2] and table["distance_2"].tolist() == [0.2, 0.4]


def test_embeddings_file_round_trip_and_damage(tmp_path: Path):
    meta = pd.DataFrame({"subject": [1, 2], "condition": ["nm", "bg"], "view": ["00_0", "45_1"], "seq": [0, 1]})
    emb = np.arange(6, dtype=np.float32).reshape(2, 3)
    path = write_embeddings(tmp_path / "e.h5", emb, meta, {"ckpt_path": "/x/best.pt", "tta": False})
    got, got_meta, attrs = read_embeddings(path)
    assert (got == emb).all() and attrs == {"ckpt_path": "/x/best.pt", "tta": False}
    pd.testing.assert_frame_equal(got_meta, meta)
    with h5py.File(path, "a") as f:
        del f["embeddings"]
    with pytest.raises(DatasetFormatError, match=r"e.h5: file: expected an embeddings.h5 written by gaitgraph.predict"):
        read_embeddings(path)
