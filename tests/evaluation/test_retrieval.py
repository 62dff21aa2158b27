"""Retrieval protocols (GREW, Gait3D): hand-computed rank-k, mAP, mINP, ties, submission rows, specs, dispatch."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError
from gaitgraph.evaluation.pipeline import protocols_for, score
from gaitgraph.evaluation.protocols import Protocol, RetrievalProtocol, load_protocols
from gaitgraph.evaluation.retrieval import evaluate_retrieval, match_statistics, pairwise_distances, ranked_gallery


def _toy(gallery: list[tuple[int, float]], probes: list[tuple[int, float]]) -> tuple[np.ndarray, pd.DataFrame]:
    """Unit vectors at the given angles (degrees): the nearer the angle, the nearer the sequence."""
    rows = [(s, "g", a, f"gal/{i}") for i, (s, a) in enumerate(gallery)]
    rows += [(s, "p", a, f"probe/03/vid{i}") for i, (s, a) in enumerate(probes)]
    meta = pd.DataFrame(rows, columns=["subject", "condition", "angle", "source"])
    rad = np.deg2rad(meta.angle.to_numpy())
    return np.stack([np.cos(rad), np.sin(rad)], axis=1).astype(np.float32), meta


def _protocol(**kw) -> RetrievalProtocol:
    return RetrievalProtocol.from_config(
        "toy", {"kind": "retrieval", "gallery": {"condition": ["g"]}, "probes": {"condition": ["p"]}, **kw}
    )


def test_match_statistics_by_hand():
    matches = torch.tensor([[False, True, False, True], [True, False, False, False], [False, False, False, False]])
    first, ap, inp = match_statistics(matches)
    assert first.tolist() == [2, 1, 0]
    # row 0: matches at 2 and 4 -> precisions 1/2 and 2/4 -> AP 0.5; INP = 2 matches / position 4
    assert ap.tolist() == [0.5, 1.0, 0.0] and inp.tolist() == [0.5, 1.0, 0.0]


def test_ranked_gallery_keeps_gallery_order_on_ties():
    assert ranked_gallery(torch.tensor([[0.3, 0.1, 0.3, 0.1]])).tolist() == [[1, 3, 0, 2]]


@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_rank_k_map_minp_fail_and_skip(distance: str):
    # probe 1 sees the gallery as subjects [2, 1, 3, 1]; probe 9 has no true match in the gallery
    emb, meta = _toy([(2, 10.0), (1, 20.0), (3, 30.0), (1, 40.0)], [(1, 0.0), (9, 0.0)])
    fail = evaluate_retrieval(emb, meta, _protocol(ranks=[1, 2, 5]), distance)
    assert fail.rank_rates == {1: 0.0, 2: 0.5, 5: 0.5} and fail.mean_rank1 == 0.0
    assert fail.mean_map == pytest.approx(0.25) and fail.mean_inp == pytest.approx(0.25)
    assert (fail.n_probes, fail.n_scored, fail.n_gallery) == (2, 2, 4)
    skip = evaluate_retrieval(emb, meta, _protocol(ranks=[1, 2, 5], missing_gallery="skip"), distance)
    assert skip.rank_rates == {1: 0.0, 2: 1.0, 5: 1.0} and skip.n_scored == 1
    assert skip.mean_map == pytest.approx(0.5) and skip.mean_inp == pytest.approx(0.5)


def test_tied_distances_rank_the_earlier_gallery_sequence_first():
    wrong_first = evaluate_retrieval(*_toy([(2, 10.0), (1, 10.0)], [(1, 0.0)]), _protocol())
    right_first = evaluate_retrieval(*_toy([(1, 10.0), (2, 10.0)], [(1, 0.0)]), _protocol())
    assert wrong_first.mean_rank1 == 0.0 and right_first.mean_rank1 == 1.0


def test_gallery_others_and_submission_rows():
    emb, meta = _toy([(2, 10.0), (1, 20.0), (3, 30.0)], [(-1, 0.0), (-1, 35.0)])
    spec = {
        "kind": "retrieval",
        "probes": {"condition": ["p"]},
        "gallery": "others",
        "missing_gallery": "skip",
        "submission": True,
    }
    result = evaluate_retrieval(emb, meta, RetrievalProtocol.from_config("sub", spec))
    assert result.n_gallery == 3 and result.n_scored == 0 and math.isnan(result.mean_rank1)
    table = result.submission
    assert list(table.columns) == ["videoId", "rank1", "rank2", "rank3"]
    assert table.values.tolist() == [["vid0", 2, 1, 3], ["vid1", 3, 1, 2]]
    assert result.to_dict()["mean_rank1"] is None


def test_nothing_to_score_without_a_submission_is_an_error():
    emb, meta = _toy([(2, 10.0)], [(1, 0.0)])
    with pytest.raises(ValueError, match="no probe has a true match"):
        evaluate_retrieval(emb, meta, _protocol(missing_gallery="skip"))


def test_probe_in_the_gallery_is_rejected():
    emb, meta = _toy([(2, 10.0)], [(1, 0.0)])
    protocol = RetrievalProtocol.from_config(
        "x", {"kind": "retrieval", "gallery": {"subject": [1, 2]}, "probes": {"condition": ["p"]}}
    )
    with pytest.raises(ConfigError, match="1 sequences are in both"):
        evaluate_retrieval(emb, meta, protocol)


@pytest.mark.parametrize(
    ("spec", "key"),
    [
        ({"kind": "retrieval", "gallery": "others"}, "dataset.protocols.bad"),
        ({"kind": "retrieval", "probes": {"c": ["p"]}, "ranks": [5]}, "dataset.protocols.bad.ranks"),
        (
            {"kind": "retrieval", "probes": {"c": ["p"]}, "missing_gallery": "drop"},
            "dataset.protocols.bad.missing_gallery",
        ),
        ({"kind": "retrieval", "probes": {"c": ["p"]}, "val": "yes"}, "dataset.protocols.bad.val"),
        (
            {"kind": "retrieval", "probes": {"c": ["p"]}, "val": {"probes": {}, "submission": True}},
            "dataset.protocols.bad.val",
        ),
        ({"kind": "ranking", "probes": {"c": ["p"]}}, "dataset.protocols.bad.kind"),
    ],
)
def test_bad_retrieval_specs_name_the_key(spec: dict, key: str):
    with pytest.raises(ConfigError, match=rf"^{key}="):
        load_protocols({"bad": spec})


def test_for_split_val_variants():
    specs = {
        "both": {"kind": "retrieval", "probes": {"c": ["p"]}},
        "own": {
            "kind": "retrieval",
            "probes": {"c": ["p"]},
            "ranks": [1, 5],
            "val": {"probes": {"c": ["t"], "seq": [0]}, "missing_gallery": "skip"},
        },
        "test_only": {"kind": "retrieval", "probes": {"c": ["p"]}, "val": False},
    }
    protocols = load_protocols(specs)
    assert protocols["both"].for_split("val") is protocols["both"]
    val = protocols["own"].for_split("val")
    assert val.probes == {"c": ["t"], "seq": [0]} and val.gallery is None
    assert val.missing_gallery == "skip" and val.ranks == (1, 5)
    assert protocols["test_only"].for_split("val") is None and protocols["test_only"].for_split("test") is not None


def _dataset_cfg() -> OmegaConf:
    return OmegaConf.create(
        {
            "name": "toy",
            "reader": {},
            "split": {"train_subjects": [1], "val_subjects": [5, 6], "test_subjects": [7, 8]},
            "protocols": {
                "main": {
                    "kind": "retrieval",
                    "gallery": {"condition": ["g"]},
                    "probes": {"condition": ["p"]},
                    "val": {"probes": {"condition": ["t"], "seq": [0]}},
                },
                "views": {
                    "gallery": {"condition": ["g"]},
                    "probes": {"p": {"condition": ["p"]}},
                    "exclude_identical_view": False,
                },
            },
        }
    )


def _poses(subjects: list[int]) -> PoseSet:
    meta = [dict(subject=s, condition="t", seq=0, view="000", source=str(s)) for s in subjects]
    return PoseSet.from_sequences([np.zeros((2, 17, 3))] * len(subjects), meta)


def test_protocols_for_takes_the_val_queries_on_the_validation_split_only():
    cfg = _dataset_cfg()
    on_val = protocols_for(cfg, "val")
    assert on_val["main"].probes == {"condition": ["t"], "seq": [0]}
    assert isinstance(on_val["views"], Protocol)
    assert protocols_for(cfg, "test")["main"].probes == {"condition": ["p"]}
    assert protocols_for(cfg)["main"].probes == {"condition": ["p"]}  # the test split by default


def test_score_dispatches_on_the_protocol_kind():
    emb, meta = _toy([(1, 10.0), (2, 50.0)], [(1, 0.0), (2, 45.0)])
    meta["view"], meta["seq"] = "000", 0
    poses = PoseSet.from_sequences([np.zeros((1, 17, 3))] * len(meta), meta)
    protocols = {
        "r": _protocol(),
        "v": Protocol.from_config(
            "v",
            {"gallery": {"condition": ["g"]}, "probes": {"p": {"condition": ["p"]}}, "exclude_identical_view": False},
        ),
    }
    results = score(emb, poses, protocols, "euclidean")
    assert results["r"].kind == "retrieval" and results["r"].mean_rank1 == 1.0
    assert results["v"].mean_rank1 == 1.0 and hasattr(results["v"], "cells")


def test_part_based_euclidean_is_the_mean_of_per_part_distances():
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(3, 4, 5)), rng.normal(size=(6, 4, 5))  # [S, D, parts]
    hand = [[np.mean([np.linalg.norm(q[i, :, p] - g[j, :, p]) for p in range(5)]) for j in range(6)] for i in range(3)]
    got = pairwise_distances(torch.tensor(q), torch.tensor(g), "euclidean")
    np.testing.assert_allclose(got.numpy(), np.array(hand), rtol=1e-10)
    # One probe (subject 1) at 0 in both parts: the mean of the part distances puts its own subject's gallery
    # sequence (0, 1.9) first (0.95 < 1.0); the distance of the concatenated parts would put (1, 1) first.
    emb = np.array([[[0.0, 0.0]], [[1.0, 1.0]], [[0.0, 1.9]]], dtype=np.float32)  # [S, D=1, parts=2]
    meta = pd.DataFrame({"subject": [1, 2, 1], "condition": ["p", "g", "g"], "source": ["a", "b", "c"]})
    result = evaluate_retrieval(emb, meta, _protocol(ranks=[1, 2]), "euclidean")
    assert result.rank_rates == {1: 1.0, 2: 1.0} and result.mean_map == 1.0 and result.distance == "euclidean"
