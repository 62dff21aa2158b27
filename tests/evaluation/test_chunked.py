"""Scoring in probe blocks under a memory budget gives exactly what one block over every probe gives.

Every scorer (the per-view protocols, retrieval, identify) takes its block size from ``metrics.probe_block`` and the
budget ``metrics.BLOCK_ELEMENTS``; a budget of a few elements forces blocks of one or two probes. The results are
compared exactly (not approximately) with a budget large enough for a single block, for plain [S, D] and part-based
[S, D, P] embeddings, Euclidean and cosine, and no distance table is larger than the budget allows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from gaitgraph.evaluation import identify as identify_module
from gaitgraph.evaluation import metrics, retrieval
from gaitgraph.evaluation.identify import identify
from gaitgraph.evaluation.metrics import evaluate
from gaitgraph.evaluation.protocols import Protocol, RetrievalProtocol
from gaitgraph.evaluation.retrieval import evaluate_retrieval

WHOLE = 1 << 40  # one block holds every probe
SHAPES = {"plain": (12,), "parts": (6, 5)}  # [S, D] and part-based [S, D, P]
DISTANCES = ("euclidean", "cosine")


def _data(shape: tuple[int, ...], seed: int = 0) -> tuple[torch.Tensor, pd.DataFrame]:
    """10 subjects x 4 sequences x 3 views (a few missing), embeddings near a per-subject centre."""
    rng = np.random.default_rng(seed)
    rows = [(s, "nm", q, v) for s in range(10) for q in range(4) for v in "abc" if rng.random() > 0.1]
    meta = pd.DataFrame(rows, columns=["subject", "condition", "seq", "view"])
    centre = rng.standard_normal((10, *shape))
    noise = 0.25 * np.sqrt(np.prod(shape))  # as hard for 30 part features as for 12 plain ones
    emb = centre[meta.subject.to_numpy()] + noise * rng.standard_normal((len(meta), *shape))
    return torch.from_numpy(emb.astype(np.float32)), meta


def _budget(monkeypatch: pytest.MonkeyPatch, elements: int) -> None:
    monkeypatch.setattr(metrics, "BLOCK_ELEMENTS", elements)


def test_probe_block_fits_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    _budget(monkeypatch, 1 << 21)
    rows = metrics.probe_block(10_000, 19)  # an OUMVLP gallery view, GPGait's 19 parts
    assert rows * 10_000 * 19 <= 1 << 21 < (rows + 1) * 10_000 * 19
    assert metrics.probe_block(1 << 30) == 1  # a gallery above the budget: one probe at a time


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("distance", DISTANCES)
def test_per_view_protocol(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], distance: str) -> None:
    emb, meta = _data(shape)
    spec = {"gallery": {"seq": [0, 1]}, "probes": {"x": {"seq": [2]}, "y": {"seq": [3]}}}
    protocol = Protocol.from_config("r", {**spec, "exclude_identical_view": True})
    sizes = []
    real_workspace = metrics._Workspace

    def workspace(elements: int, columns: int, device: torch.device) -> metrics._Workspace:
        sizes.append(elements)
        return real_workspace(elements, columns, device)

    monkeypatch.setattr(metrics, "_Workspace", workspace)
    results = {}
    for budget in (WHOLE, 9, 40):
        _budget(monkeypatch, budget)
        results[budget] = evaluate(emb, meta, protocol, distance=distance)
    whole = results.pop(WHOLE)
    assert 0.2 < whole.mean_rank1 < 1  # a real ranking, neither chance nor perfect
    for result in results.values():
        pd.testing.assert_frame_equal(result.cells, whole.cells, check_exact=True)
        assert (result.mean_rank1, result.mean_map) == (whole.mean_rank1, whole.mean_map)
    gallery = meta[meta.seq < 2]
    largest = int(gallery.groupby("view").size().max())  # the largest gallery at one view: one probe's row
    probes = int(meta[meta.seq >= 2].groupby("view").size().max())
    # one block of every probe at a view; a budget below one row still scores a probe at a time; 40 elements
    assert sizes == [probes * largest, largest, (40 // largest) * largest]


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("distance", DISTANCES)
def test_retrieval(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], distance: str) -> None:
    emb, meta = _data(shape, seed=1)
    meta["source"] = [f"probe/{i}" for i in range(len(meta))]
    spec = {"kind": "retrieval", "gallery": {"seq": [0, 1]}, "probes": {"seq": [2, 3]}, "ranks": [1, 5]}
    protocol = RetrievalProtocol.from_config("toy", {**spec, "submission": True})
    tables = []
    real = retrieval.pairwise_distances

    def pairwise(probes: torch.Tensor, gallery: torch.Tensor, how: str) -> torch.Tensor:
        parts = probes.shape[2] if probes.ndim == 3 else 1
        tables.append(len(probes) * len(gallery) * parts)
        return real(probes, gallery, how)

    monkeypatch.setattr(retrieval, "pairwise_distances", pairwise)
    _budget(monkeypatch, WHOLE)
    whole = evaluate_retrieval(emb, meta, protocol, distance)
    assert len(tables) == 1 and 0.2 < whole.mean_rank1 < 1
    parts = shape[1] if len(shape) == 2 and distance == "euclidean" else 1  # cosine parts arrive as one vector
    budget = 3 * whole.n_gallery * parts  # three probes per block
    _budget(monkeypatch, budget)
    tables.clear()
    chunked = evaluate_retrieval(emb, meta, protocol, distance)
    assert len(tables) == -(-whole.n_probes // 3) and max(tables) <= budget
    assert (chunked.rank_rates, chunked.mean_map, chunked.mean_inp) == (
        whole.rank_rates,
        whole.mean_map,
        whole.mean_inp,
    )
    pd.testing.assert_frame_equal(chunked.submission, whole.submission, check_exact=True)


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize("distance", DISTANCES)
def test_identify(monkeypatch: pytest.MonkeyPatch, shape: tuple[int, ...], distance: str) -> None:
    emb, meta = _data(shape, seed=2)
    gallery, probes = emb[meta.seq.to_numpy() == 0].numpy(), emb[meta.seq.to_numpy() > 0].numpy()
    names = meta.subject[meta.seq == 0].map(lambda s: f"person{s}").to_numpy()
    blocks = []
    real = identify_module._ranking_key

    def key(q: torch.Tensor, g: torch.Tensor, how: str) -> torch.Tensor:
        blocks.append(len(q) * len(g))
        return real(q, g, how)

    monkeypatch.setattr(identify_module, "_ranking_key", key)
    _budget(monkeypatch, WHOLE)
    whole = identify(probes, gallery, names, top_k=4, distance=distance)
    assert len(blocks) == 1
    _budget(monkeypatch, 2 * len(gallery))
    blocks.clear()
    chunked = identify(probes, gallery, names, top_k=4, distance=distance)
    assert len(blocks) == -(-len(probes) // 2) and max(blocks) <= 2 * len(gallery)
    np.testing.assert_array_equal(chunked[0], whole[0])
    np.testing.assert_array_equal(chunked[1], whole[1])
