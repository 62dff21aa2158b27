"""PosePklReader (CASIA-B-Pose, GREW, Gait3D) through their real dataset configs, and the restricted unpickler."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.pkl import UNKNOWN_SUBJECT, PosePklReader
from gaitgraph.data.safe_pickle import load_pose_array
from gaitgraph.data.splits import resolve_split, split_by_subjects
from gaitgraph.data.synthetic import generate_casia_b, generate_casia_b_pkl, generate_gait3d, generate_grew
from gaitgraph.errors import ConfigError, DatasetFormatError

from ..conftest import compose_train
from ..payload import CodePayload


def _dataset(name: str, data_dir: Path, *overrides: str):
    return compose_train(
        [f"dataset={name}", f"paths.data_dir={data_dir}", "dataset.reader.workers=0", *overrides]
    ).dataset


def _write(path: Path, obj, protocol: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    return path


def test_grew_layout_subjects_types_and_probes(tmp_path: Path):
    root = generate_grew(tmp_path / "grew", n_train=4, n_test=3, train_seqs=(2, 3), probes_per_subject=(1, 2))
    cfg = _dataset("grew", tmp_path, "dataset.split.val_count=1")
    reader = instantiate(cfg.reader)
    poses = reader.read()
    meta = poses.meta
    assert len(poses) == len(list(root.rglob("*.pkl")))
    assert sorted(meta.subject.unique()) == [UNKNOWN_SUBJECT, 1, 2, 3, 100001, 100002, 100003, 100004]
    assert set(meta[meta.subject > 100000].condition) == {"00"} and set(meta[meta.subject == -1].condition) == {"03"}
    test_ids = meta[(meta.subject > 0) & (meta.subject < 100000)]
    assert test_ids.groupby("subject").condition.apply(sorted).tolist() == [["01", "02"]] * 3
    train = meta[meta.subject == 100001]  # walks numbered from 0 in path order
    assert train.seq.tolist() == list(range(len(train))) and set(meta.view) == {"000"}
    truth = pd.read_csv(root / "probe_truth.csv")
    probes = meta[meta.subject == UNKNOWN_SUBJECT]
    assert sorted(s.rsplit("/", 1)[-1] for s in probes.source) == sorted(truth.videoId)
    split = resolve_split(cfg)
    assert split == {
        "train_subjects": [100001, 100002, 100003],
        "val_subjects": [100004],
        "test_subjects": [-1, 1, 2, 3],
    }
    parts = split_by_subjects(poses, split)
    assert sum(len(p) for p in parts.values()) == len(poses)


def test_gait3d_probe_set_and_cameras(tmp_path: Path):
    root = generate_gait3d(tmp_path / "gait3d", n_subjects=8, test_fraction=0.25)
    cfg = _dataset("gait3d", tmp_path, "dataset.split.val_count=1")
    poses = instantiate(cfg.reader).read()
    meta = poses.meta
    probes = meta[meta.condition == "probe"]
    listed = pd.read_json(root / "Gait3D.json", typ="series")["PROBE_SET"]
    assert sorted(probes.source) == sorted(p.replace("-", "/") for p in listed)
    assert probes.subject.nunique() == len(probes) == 2
    assert meta.view.str.fullmatch(r"camid\d+").all()
    assert all(source.split("/")[1].startswith(f"{view}_") for source, view in zip(meta.source, meta.view))
    assert set(meta.condition) == {"nm", "probe"}
    split = resolve_split(cfg)
    assert set(probes.subject) <= set(split["test_subjects"]) and len(split["val_subjects"]) == 1


def test_csv_and_pickle_readers_give_the_same_poses(tmp_path: Path):
    kw = dict(n_subjects=3, n_views=3, frames=30, drop_prob=0.1, seed=4)
    generate_casia_b(tmp_path / "casia-b" / "casia-b_pose_coco.csv", **kw)
    generate_casia_b_pkl(tmp_path / "casia-b-pkl", **kw)
    from_csv = CasiaBReader(tmp_path / "casia-b").read()
    from_pkl = instantiate(_dataset("casia_b_pkl", tmp_path).reader).read()
    np.testing.assert_array_equal(from_pkl.frames, from_csv.frames)
    np.testing.assert_array_equal(from_pkl.offsets, from_csv.offsets)
    same = ["subject", "condition", "seq", "view", "n_frames"]  # `source` names the file, which differs by format
    pd.testing.assert_frame_equal(from_pkl.meta[same], from_csv.meta[same])
    assert from_pkl.meta.source[0] == "001/bg-01/000" and from_csv.meta.source[0] == "001-bg-01-000"


def test_workers_give_the_same_poses_as_one_process(tmp_path: Path):
    generate_grew(tmp_path / "grew", n_train=6, n_test=2)
    cfg = _dataset("grew", tmp_path)
    alone = instantiate(cfg.reader).read()
    pooled = instantiate(cfg.reader, workers=2).read()
    np.testing.assert_array_equal(pooled.frames, alone.frames)
    pd.testing.assert_frame_equal(pooled.meta, alone.meta)


def test_a_crafted_pickle_runs_nothing(tmp_path: Path):
    # the payload is real: an ordinary unpickler creates the marker
    pickle.loads(pickle.dumps(CodePayload(tmp_path / "proof")))
    assert (tmp_path / "proof").exists()
    path = _write(tmp_path / "001" / "nm-01" / "000" / "000.pkl", CodePayload(tmp_path / "marker"))
    reader = PosePklReader(tmp_path, layout=r"(?P<subject>\d{3})/(?P<condition>nm)-(?P<seq>\d{2})/(?P<view>\d{3})")
    with pytest.raises(DatasetFormatError, match=rf"{path}: pickle: .*'io\.open' is not allowed"):
        reader.read()
    assert not (tmp_path / "marker").exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_arrays_load_in_every_pickle_protocol(tmp_path: Path, protocol: int, dtype):
    arr = np.arange(2 * 17 * 3, dtype=dtype).reshape(2, 17, 3)
    loaded = load_pose_array(_write(tmp_path / "a.pkl", arr, protocol), 17)
    np.testing.assert_array_equal(loaded, arr)


def test_arrays_pickled_by_numpy_1_load(tmp_path: Path):
    arr = np.ones((3, 17, 3))
    old = pickle.dumps(arr, protocol=2).replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    (tmp_path / "old.pkl").write_bytes(old)
    np.testing.assert_array_equal(load_pose_array(tmp_path / "old.pkl", 17), arr)


@pytest.mark.parametrize(
    ("obj", "found"),
    [
        (np.array([[[1.0, 2.0, None]] * 17], dtype=object), "dtype object"),
        (np.zeros((2, 17, 3), dtype=np.int64), "dtype int64"),
        (np.zeros((2, 18, 3)), r"shape \[2, 18, 3\]"),
        (np.zeros((2, 51)), r"shape \[2, 51\]"),
        ({"keypoints": [1, 2]}, "a dict"),
        (b"\x80\x04\x95", "UnpicklingError|EOFError"),
    ],
    ids=["object", "int", "18-joints", "flat", "dict", "truncated"],
)
def test_anything_but_a_pose_array_is_rejected(tmp_path: Path, obj, found: str):
    path = tmp_path / "x.pkl"
    if isinstance(obj, bytes):
        path.write_bytes(obj)
    else:
        _write(path, obj)
    with pytest.raises(
        DatasetFormatError,
        match=rf"{path}: .*expected a pickled float32/float64 numpy array \[T, 17, 3\], found .*({found})",
    ):
        load_pose_array(path, 17)


@pytest.mark.parametrize("value", [1e300, 1e30, np.nan])
def test_absurd_values_name_file_frame_and_joint(tmp_path: Path, value: float):
    arr = np.ones((4, 17, 3))
    arr[2, 5, 0] = value
    path = _write(tmp_path / "0001" / "camid1_videoid1" / "seq0" / "seq0.pkl", arr)
    reader = PosePklReader(tmp_path, layout=r"(?P<subject>\d{4})/(?P<view>camid\d+)_videoid\d+/seq\d+")
    with pytest.raises(DatasetFormatError, match=rf"{path}: frame 2 joint 5 x: expected a finite number within"):
        reader.read()


@pytest.mark.parametrize(
    ("folder", "location", "found"),
    [
        ("001/xx-01/000", "folder path", "'001/xx-01/000'"),
        ("abc/nm-01/000", "folder path", "'abc/nm-01/000'"),
    ],
)
def test_folders_off_the_layout_are_named(tmp_path: Path, folder: str, location: str, found: str):
    _write(tmp_path / folder / "x.pkl", np.zeros((2, 17, 3)))
    reader = PosePklReader(
        tmp_path, layout=r"(?P<subject>\d{3})/(?P<condition>nm|bg|cl)-(?P<seq>\d{2})/(?P<view>\d{3})"
    )
    with pytest.raises(DatasetFormatError, match=rf"{tmp_path / folder}: {location}: expected .*found {found}"):
        reader.read()


def test_subject_names_two_pickles_and_config_errors(tmp_path: Path):
    grew = dict(layout=r"(?P<subject>\w+)/(?P<condition>0[0-3])/[^/]+", subject_suffixes={"train": 100000})
    _write(tmp_path / "a" / "00012test" / "00" / "v" / "v.pkl", np.zeros((2, 17, 3)))
    with pytest.raises(
        DatasetFormatError,
        match=r"subject name: expected digits with an optional suffix \('train'\), found '00012test'",
    ):
        PosePklReader(tmp_path / "a", **grew).read()
    _write(tmp_path / "b" / "00012" / "01" / "v" / "v.pkl", np.zeros((2, 17, 3)))
    _write(tmp_path / "b" / "00012" / "01" / "v" / "w.pkl", np.zeros((2, 17, 3)))
    with pytest.raises(DatasetFormatError, match=r"01/v: folder: expected one \.pkl per sequence folder, found 2"):
        PosePklReader(tmp_path / "b", **grew).read()
    with pytest.raises(ConfigError, match=r"^dataset\.reader\.split_file='\.\./GREW\.json'"):
        PosePklReader(tmp_path, split_file="../GREW.json", **grew)
    with pytest.raises(ConfigError, match=r"^dataset\.reader\.probe_key='PROBE_SET'"):
        PosePklReader(tmp_path, probe_key="PROBE_SET", **grew)


def test_missing_dataset_gives_the_hint(tmp_path: Path):
    cfg = _dataset("gait3d", tmp_path)
    with pytest.raises(
        DatasetFormatError, match=r"dataset root: .*no such folder\n  hint: Gait3D is released on request"
    ):
        instantiate(cfg.reader).read()


def test_val_count_holds_out_the_last_training_ids():
    from omegaconf import OmegaConf

    def split(**kw):
        return OmegaConf.create(
            {
                "name": "x",
                "reader": {},
                "split": {"train_subjects": [5, 1, 3, 4, 2], "val_subjects": None, "test_subjects": [9], **kw},
            }
        )

    assert resolve_split(split(val_count=2)) == {
        "train_subjects": [1, 2, 3],
        "val_subjects": [4, 5],
        "test_subjects": [9],
    }
    with pytest.raises(ConfigError, match=r"^dataset\.split\.val_count=5: expected between 1 and 4"):
        resolve_split(split(val_count=5))
    with pytest.raises(ConfigError, match=r"^dataset\.split\.val_count=1: expected 0 when"):
        resolve_split(split(val_count=1, val_subjects=[2]))
