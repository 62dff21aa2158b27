"""The zoo's embeddings equal FastPoseGait's own (commit 94da9c8) on the same weights and raw pixel poses.

tests/models/data/fastposegait_embeddings.npz was written by tests/models/data/record_fastposegait.py, which ran
FastPoseGait's code in float64 and float32 on weights drawn from a seed (rebuilt here by the same generator) and
recorded the float64 outputs and the reference's own float32 error. Our float32 outputs must lie within twice that
error (measured ratio 0.77-1.32: the two float32 computations round differently, neither is the exact value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import ZOO, build_zoo
from .zoo_weights import seeded_state_dict

RECORD = np.load(Path(__file__).parent / "data" / "fastposegait_embeddings.npz")
TOLERANCE = 2.0


def _load_recorded_weights(model: torch.nn.Module, option: str) -> None:
    state = model.state_dict()
    listing = [(k, tuple(v.shape)) for k, v in state.items()]
    state.update(seeded_state_dict(listing, int(RECORD["seed"])))
    prefix = f"{option}/override/"
    state.update({k[len(prefix) :]: torch.from_numpy(RECORD[k]) for k in RECORD.files if k.startswith(prefix)})
    model.load_state_dict(state)


@pytest.mark.parametrize("option", list(ZOO))
def test_embeddings_match_fastposegait(option):
    model, _ = build_zoo(option)
    _load_recorded_weights(model, option)
    model.eval()
    poses = torch.from_numpy(RECORD[f"{option}/poses"])
    with torch.no_grad():
        ours = {"embedding": model.embed(poses)}
        out = model(model.input_features(poses))
    if out.logits is not None:  # GPGait: the training part embedding and the BNNeck logits too
        ours["part_embedding"] = out.embedding
        ours["logits"] = out.logits[:, : RECORD[f"{option}/logits"].shape[1]]
    for key, value in ours.items():
        reference = RECORD[f"{option}/{key}"]
        error = np.abs(value.numpy().reshape(reference.shape) - reference).max()
        allowed = TOLERANCE * float(RECORD[f"{option}/{key}_f32_error"])
        assert error <= allowed, f"{option} {key}: |ours - FastPoseGait| = {error:.2e} > {allowed:.2e}"
        assert float(RECORD[f"{option}/{key}_f32_error"]) < 1e-5 * np.abs(reference).max()  # a tight bound


def test_recording_provenance():
    assert str(RECORD["upstream_commit"]) == "94da9c82df72b94c342ca8c6366e90578ea8e1ae"
    assert {k.split("/")[0] for k in RECORD.files if "/" in k} == set(ZOO)
