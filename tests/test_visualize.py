"""Activation maps, their drawing (docs/original-network.md#activation-maps, gaitgraph.evaluation.activations) and
``gaitgraph.visualize`` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf, open_dict
from PIL import Image

from gaitgraph.errors import ConfigError
from gaitgraph.evaluation.activations import activation_map, bones, draw_frames, write_gif
from gaitgraph.models import build_model
from gaitgraph.visualize import select_sequences

from .conftest import compose_train, run_console


def coco17():
    return instantiate(compose_train().keypoints)


def test_activation_map_relu_global_max_and_temporal_stride() -> None:
    weight = np.array([[1.0], [-1.0]])  # K=2 units, C=1 channel
    feature = np.array([[[1.0, -2.0], [4.0, 0.0], [-1.0, 2.0]]])  # [C=1, T'=3, V=2]
    r = activation_map(weight, feature, n_frames=6)
    # unit 0: [[1,0],[4,0],[0,2]], unit 1 (negated): [[0,2],[0,0],[1,0]]; global max 4; frame t -> step t*3//6
    per_step = np.array([[1, 2], [4, 0], [1, 2]]) / 4
    np.testing.assert_allclose(r, per_step[[0, 0, 1, 1, 2, 2]])
    assert r.shape == (6, 2) and r.max() == 1.0
    # GaitGraph2's T=60 -> T'=15 is t // 4
    feature = np.random.default_rng(0).standard_normal((3, 15, 4))
    r60 = activation_map(np.eye(3), feature, n_frames=60)
    np.testing.assert_allclose(r60, (np.maximum(feature, 0).max(0) / feature.max())[np.arange(60) // 4])
    assert not activation_map(weight, np.zeros((1, 3, 2)), 6).any()  # nothing positive: all zero, no NaN


def test_bones_follow_connect_joint_plus_extra_bone() -> None:
    pairs = {tuple(p) for p in bones(coco17()).tolist()}
    assert (0, 0) not in pairs and (11, 12) in pairs and (9, 7) in pairs and (16, 14) in pairs
    assert len(pairs) == 16 + 1


def _saturated(frame: np.ndarray) -> int:
    """Coloured (plasma) pixels left of the colourbar: bones are grey and text is black."""
    body = frame[:, : int(frame.shape[1] * 0.8)].astype(int)
    return int(((body.max(2) - body.min(2)) > 60).sum())


def test_draw_frames_colours_sizes_and_hides_by_confidence() -> None:
    rng = np.random.default_rng(0)
    joints = np.concatenate([rng.uniform(-40, 40, (4, 17, 2)), np.ones((4, 17, 1))], axis=2).astype(np.float32)
    joints[1, :, 2] = 0.01  # below 0.025: nothing of frame 1 is drawn
    activation = np.full((4, 17), 1.0)
    activation[2] = 0.3
    activation[3] = 0.0  # zero activation: zero-size markers
    frames = draw_frames(joints, activation, bones(coco17()), [f"s, v, q, {t}" for t in range(4)], size_px=200)
    assert len(frames) == 4 and all(f.shape == (200, 200, 3) and f.dtype == np.uint8 for f in frames)
    counts = [_saturated(f) for f in frames]
    assert counts[0] > counts[2] > 0 and counts[1] == 0 and counts[3] == 0
    # bones of the hidden frame are gone too: frame 1 differs from frame 3 (same zero markers, bones drawn)
    assert (frames[1] != frames[3]).any()
    with pytest.raises(ValueError, match="titles"):
        draw_frames(joints, activation, bones(coco17()), ["one title"], size_px=100)


def test_write_gif_round_trip(tmp_path: Path) -> None:
    frames = [np.full((60, 80, 3), 40 * i, np.uint8) for i in range(5)]
    write_gif(frames, tmp_path / "a.gif", duration_ms=100)
    with Image.open(tmp_path / "a.gif") as gif:
        assert gif.n_frames == 5 and gif.size == (80, 60)
    assert [p.name for p in tmp_path.iterdir()] == ["a.gif"]  # no temp file left behind


def test_select_sequences_filters_and_limits() -> None:
    meta = pd.DataFrame(
        {
            "subject": [6, 6, 7, 7],
            "condition": ["nm", "bg", "nm", "nm"],
            "seq": [0, 0, 0, 1],
            "view": ["00_0", "00_0", "00_0", "45_1"],
        }
    )
    assert select_sequences(meta, {"condition": "nm"}).tolist() == [0, 2, 3]
    assert select_sequences(meta, {"subject": [7], "view": "45_1"}).tolist() == [3]
    assert select_sequences(meta, {"subject": "7", "limit": 1}).tolist() == [2]  # CLI strings cast to the column
    with pytest.raises(ConfigError, match=r"select=\{'subject': 9\}: expected a choice matching a test sequence"):
        select_sequences(meta, {"subject": 9})
    with pytest.raises(ConfigError, match="select.angle=0: expected a key of select"):
        select_sequences(meta, {"angle": 0})


@pytest.mark.slow
def test_console_script_writes_gifs_and_pngs(tmp_path: Path, shared_cache: Path) -> None:
    """``gaitgraph-viz`` in a new process: the smoke test of the console script, on an untrained checkpoint."""
    cfg = compose_train(["dataset.sequence_length=12", "logger=none"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path)
    torch.manual_seed(0)
    model = build_model(cfg.model, instantiate(cfg.keypoints))
    ckpt = tmp_path / "untrained.pt"
    torch.save({"model": model.state_dict(), "config": OmegaConf.to_container(cfg, resolve=True)}, ckpt)
    run_dir = tmp_path / "vis"
    done = run_console(
        "gaitgraph-viz",
        [
            f"ckpt_path={ckpt}",
            f"paths.output_root={tmp_path}",
            f"paths.cache_dir={shared_cache}",
            f"hydra.run.dir={run_dir}",
            "select.subject=6",
            "select.view=00_0",
            "select.limit=2",
            "size_px=160",
            "png=true",
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    gifs = sorted((run_dir / "activations").glob("*.gif"))
    assert len(gifs) == 2 and all(g.name.startswith("006-00_0-") for g in gifs)
    for gif in gifs:
        with Image.open(gif) as im:
            assert im.n_frames == 12 and im.size == (160, 160)  # one frame per window frame
    assert len(list((run_dir / "activations" / "png").glob("*.png"))) == 2 * 12
