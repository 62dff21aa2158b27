"""keypoints=openpose_coco17: a COCO-17 model on OUMVLP-Pose's OpenPose-18 files, converted once in the cache."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import open_dict

from gaitgraph.data import cache
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.preprocess import convert_layout
from gaitgraph.data.synthetic import generate_oumvlp
from gaitgraph.evaluate import evaluate
from gaitgraph.skeletons import Skeleton, openpose18_to_coco17
from gaitgraph.train import train

from ..conftest import CONF_DIR, compose_train

GRAPH_FIELDS = (
    "layout",
    "joints",
    "links",
    "center",
    "connect_joint",
    "flip_idx",
    "parts",
    "hips",
    "shoulders",
    "extra_bone",
)


def _skeleton(*overrides: str) -> Skeleton:
    return instantiate(compose_train(list(overrides)).keypoints)


@pytest.fixture(scope="module")
def oumvlp_data(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("data")
    generate_oumvlp(data / "oumvlp", n_subjects=3, n_views=2, frames=8, sources=("openpose",), seed=1)
    return data


def _load(data: Path, cache_dir: Path, keypoints: str, *overrides: str) -> tuple[PoseSet, Path, Path]:
    cfg = compose_train(
        [
            "dataset=oumvlp",
            f"keypoints={keypoints}",
            f"paths.data_dir={data}",
            f"paths.cache_dir={cache_dir}",
            "dataset.reader.workers=0",
            "dataset.split.val_count=0",
            *overrides,
        ]
    )
    skeleton = instantiate(cfg.keypoints)
    poses = cache.load_poses(cfg.dataset, skeleton, cfg.paths.cache_dir)
    raw, proc, _ = cache.cache_paths(cfg.dataset, cfg.paths.cache_dir, skeleton)
    return poses, raw, proc


def test_option_is_the_coco17_skeleton_reading_openpose18_files():
    coco, converted = _skeleton("keypoints=coco17"), _skeleton("keypoints=openpose_coco17")
    for name in GRAPH_FIELDS:
        assert getattr(converted, name) == getattr(coco, name), name
    assert converted.num_joints == 17
    assert (converted.source, converted.convert_from, converted.file_layout) == ("openpose", "openpose18", "openpose18")
    assert (coco.convert_from, coco.file_layout) == (None, "coco17")


@pytest.mark.parametrize("found", ["coco17", "mpii"])
def test_unknown_conversion_names_option_known_ones_and_found(found: str):
    with pytest.raises(Exception) as info:
        _skeleton("keypoints=coco17", f"+keypoints.convert_from={found}")
    err = info.value
    while not isinstance(err, ValueError) and err.__cause__ is not None:  # Hydra wraps _target_ errors
        err = err.__cause__
    assert isinstance(err, ValueError)
    message = str(err)
    assert "keypoints.convert_from" in message and "openpose18 -> coco17" in message and f"'{found}'" in message


def test_convert_layout_is_pure_and_reorders_joints():
    rng = np.random.default_rng(0)
    poses = PoseSet.from_sequences(
        [rng.normal(size=(n, 18, 3)).astype(np.float32) for n in (3, 5)],
        [dict(subject=s, condition="nm", seq=0, view="000", source=f"s{s}") for s in (1, 2)],
    )
    before = poses.frames.copy()
    out = convert_layout(poses, _skeleton("keypoints=openpose_coco17"))
    np.testing.assert_array_equal(out.frames, openpose18_to_coco17(before))
    np.testing.assert_array_equal(out.offsets, poses.offsets)
    pd.testing.assert_frame_equal(out.meta, poses.meta)
    np.testing.assert_array_equal(poses.frames, before)  # input untouched
    assert convert_layout(poses, _skeleton("keypoints=openpose")) is poses


def test_converted_load_equals_conversion_of_openpose_load_and_shares_raw_cache(oumvlp_data: Path, tmp_path: Path):
    converted, raw_c, proc_c = _load(oumvlp_data, tmp_path, "openpose_coco17")
    plain, raw_o, proc_o = _load(oumvlp_data, tmp_path, "openpose")
    assert converted.num_joints == 17 and plain.num_joints == 18
    np.testing.assert_array_equal(converted.frames, openpose18_to_coco17(plain.frames))
    np.testing.assert_array_equal(converted.offsets, plain.offsets)
    pd.testing.assert_frame_equal(converted.meta, plain.meta)
    assert raw_c == raw_o, "keypoints=openpose_coco17 must reuse the openpose raw cache"
    assert proc_c != proc_o, "the conversion must be part of the processed cache key"
    assert sorted(tmp_path.glob("*.h5")) == sorted({raw_c, proc_c, proc_o})
    assert cache.load_poseset(proc_c).num_joints == 17  # converted once, stored converted


def test_conversion_runs_before_normalisation(oumvlp_data: Path, tmp_path: Path):
    poses, _, _ = _load(oumvlp_data, tmp_path, "openpose_coco17", "dataset.preprocess.normalize=center_scale")
    hips = poses.frames[:, [11, 12], :2].mean(axis=1)  # COCO-17 hips: normalised with the converted indices
    np.testing.assert_allclose(hips, 0.0, atol=1e-3)


@pytest.mark.parametrize(
    ("dataset", "keypoints", "expected"),
    [
        ("casia_b", "openpose_coco17", "dataset 'casia_b' holds coco17 poses but keypoints reads 'openpose18' files"),
        ("oumvlp", "coco17", "dataset 'oumvlp' holds openpose18 poses but keypoints has layout 'coco17'"),
    ],
)
def test_wrong_combination_fails_clearly(tmp_path: Path, dataset: str, keypoints: str, expected: str):
    cfg = compose_train([f"dataset={dataset}", f"keypoints={keypoints}", f"paths.data_dir={tmp_path}"])
    with pytest.raises(ValueError, match="keypoints= option") as info:
        cache.load_poses(cfg.dataset, instantiate(cfg.keypoints), tmp_path / "cache")
    assert expected in str(info.value)


def test_train_and_evaluate_a_coco17_model_on_openpose_files(oumvlp_data: Path, tmp_path: Path):
    paths = [f"paths.data_dir={oumvlp_data}", f"paths.cache_dir={tmp_path / 'cache'}", "logger=none"]
    cfg = compose_train(
        [
            "dataset=oumvlp",
            "keypoints=openpose_coco17",
            "dataset.sequence_length=8",
            "dataset.reader.workers=0",
            "dataset.split.val_count=0",
            "trainer.epochs=1",
            "trainer.batch_size=4",  # the whole training split: 1 subject x 2 views x 2 walks
            "baseline=false",
            *paths,
        ]
    )
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    train(cfg)
    summary = json.loads((tmp_path / "run" / "metrics.json").read_text())
    metric = summary["test"][summary["metric_protocol"]]["mean_rank1"]
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    state = torch.load(ckpt, weights_only=False)
    assert state["model"]["A"].shape[-2:] == (17, 17), "the model must be built on the COCO-17 graph"
    assert state["config"]["keypoints"]["convert_from"] == "openpose18"

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        eval_cfg = compose("evaluate", overrides=[f"ckpt_path={ckpt}", *paths])
    with open_dict(eval_cfg):
        eval_cfg.paths.output_dir = str(tmp_path / "eval")
    assert evaluate(eval_cfg, overrides=[]) == pytest.approx(metric, abs=1e-9)
