"""Test-time embedding: windows, batching, TTA order, and the raw-pose baseline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gaitgraph.data.poseset import PoseSet
from gaitgraph.evaluation.baseline import pose_baseline_features
from gaitgraph.evaluation.embed import embed_poseset
from gaitgraph.evaluation.metrics import evaluate
from gaitgraph.evaluation.protocols import Protocol
from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.skeletons import Skeleton

from ..conftest import skeleton as load_skeleton

L = 6
# Centre windows by hand (docs/original-network.md#sequence-windows: PadSequence then SelectSequenceCenter):
# T=10 -> frames 2..7; T=4 -> reflect pad [1,0,1,2,3,2,1] cut to 6, centre start 0 -> [1,0,1,2,3,2].
WINDOWS = [[2, 3, 4, 5, 6, 7], [1, 0, 1, 2, 3, 2]]


@pytest.fixture(scope="module")
def skeleton() -> Skeleton:
    return load_skeleton("coco17")


def coded_poses(n_joints: int, lengths=(10, 4)) -> PoseSet:
    """x = 100 * frame + joint + 1000 * sequence, so every value says where it came from."""
    seqs = []
    for s, T in enumerate(lengths):
        t, v = np.meshgrid(np.arange(T), np.arange(n_joints), indexing="ij")
        seqs.append(np.stack([100 * t + v + 1000 * s, -t, np.ones_like(t)], -1).astype(np.float32))
    meta = [{"subject": s, "condition": "nm", "seq": 0, "view": "000", "source": "x"} for s in range(len(lengths))]
    return PoseSet.from_sequences(seqs, meta)


class FirstFrameX(GaitModel):
    """Stand-in model: embedding = joint-branch x of the first window frame, per joint."""

    def __init__(self, skeleton: Skeleton) -> None:
        super().__init__(skeleton, "gaitgraph2")
        self.calls: list[tuple[bool, bool]] = []

    def forward(self, x: torch.Tensor) -> ModelOutput:
        assert x.shape[1:] == (L, 17, 3, 5)
        self.calls.append((self.training, torch.is_inference_mode_enabled()))
        return ModelOutput(x[:, 0, :, 0, 0], x)


@pytest.mark.parametrize("batch_size", [1, 256])
def test_embed_tta_order_and_concatenation(skeleton: Skeleton, batch_size: int) -> None:
    poses = coded_poses(17)
    model = FirstFrameX(skeleton).train()
    emb = embed_poseset(model, poses, skeleton, L, tta=True, batch_size=batch_size, progress=False)
    joints = np.arange(17)
    flip = np.asarray(skeleton.flip_idx)
    for s, window in enumerate(WINDOWS):
        first, last = 100 * window[0] + 1000 * s, 100 * window[-1] + 1000 * s
        np.testing.assert_array_equal(emb[s, :17], first + joints)  # original
        np.testing.assert_array_equal(emb[s, 17:34], last + joints)  # time-reversed: starts at the last frame
        np.testing.assert_array_equal(emb[s, 34:], first + flip)  # left/right labels swapped
    assert emb.shape == (2, 3 * 17) and emb.dtype == np.float32
    assert model.training and all(call == (False, True) for call in model.calls)


def test_embed_without_tta_and_errors(skeleton: Skeleton) -> None:
    poses = coded_poses(17)
    emb = embed_poseset(FirstFrameX(skeleton), poses, skeleton, L, progress=False)
    assert emb.shape == (2, 17) and emb[1, 0] == 1000 + 100 * WINDOWS[1][0]
    with pytest.raises(ValueError, match="18 joints"):
        embed_poseset(FirstFrameX(skeleton), coded_poses(18), skeleton, L, progress=False)


def test_baseline_features_are_the_window_coordinates() -> None:
    poses = coded_poses(3)
    feats = pose_baseline_features(poses, L)
    assert feats.shape == (2, L * 3 * 2) and feats.dtype == np.float32
    for s, window in enumerate(WINDOWS):
        expected = poses.sequence(s)[window][..., :2].reshape(-1)
        np.testing.assert_array_equal(feats[s], expected)


def test_baseline_runs_through_the_protocol() -> None:
    rng = np.random.default_rng(0)
    style = rng.standard_normal((3, 1, 5, 2))  # one gait "shape" per subject, plus noise per sequence
    seqs, meta = [], []
    for s in range(3):
        for q in range(3):
            for v in ("000", "090"):
                T = int(rng.integers(8, 20))
                xy = style[s] + 0.05 * rng.standard_normal((T, 5, 2))
                seqs.append(np.concatenate([xy, np.ones((T, 5, 1))], -1))
                meta.append({"subject": s, "condition": "nm", "seq": q, "view": v, "source": "x"})
    poses = PoseSet.from_sequences(seqs, pd.DataFrame(meta))
    spec = {"gallery": {"seq": [0, 1]}, "probes": {"nm": {"seq": [2]}}, "exclude_identical_view": True}
    result = evaluate(pose_baseline_features(poses, 10), poses.meta, Protocol.from_config("b", spec))
    assert result.mean_rank1 == 1.0
