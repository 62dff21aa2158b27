"""Rank-1 / mAP scoring on hand-made embeddings whose answer is known by construction."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from gaitgraph.errors import ConfigError, NonFiniteError
from gaitgraph.evaluation import metrics
from gaitgraph.evaluation.metrics import EvalResult, evaluate
from gaitgraph.evaluation.protocols import Protocol

CASIA_SPEC = {
    "gallery": {"condition": ["nm"], "seq": [1, 2, 3, 4]},
    "probes": {"nm": {"condition": ["nm"], "seq": [5, 6]}, "bg": {"condition": ["bg"]}, "cl": {"condition": ["cl"]}},
    "exclude_identical_view": True,
}
OUMVLP_YAML = """
gaitgraph2:          # GaitGraph2's own: gallery 00, probe 01, identical view included
  gallery: {seq: [0]}
  probes: {"01": {seq: [1]}}
  exclude_identical_view: false
  missing_gallery: fail
standard:            # OpenGait / FastPoseGait: probe 00, gallery 01, identical view excluded
  gallery: {seq: [1]}
  probes: {"00": {seq: [0]}}
  exclude_identical_view: true
"""


def make_meta(rows: list[tuple[int, str, int, str]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["subject", "condition", "seq", "view"]).astype(
        {"subject": "int64", "condition": "str", "seq": "int64", "view": "str"}
    )


def casia_meta(subjects: range, views: list[str]) -> pd.DataFrame:
    rows = []
    for s in subjects:
        for cond, seqs in (("nm", range(1, 7)), ("bg", (1, 2)), ("cl", (1, 2))):
            for q in seqs:
                rows += [(s, cond, q, v) for v in views]
    return make_meta(rows)


def onehot(index: np.ndarray, size: int) -> np.ndarray:
    out = np.zeros((len(index), size), np.float32)
    out[np.arange(len(index)), index] = 1.0
    return out


def subject_view_onehot(meta: pd.DataFrame, views: list[str]) -> np.ndarray:
    """Each (subject, view) its own orthogonal direction: matches only at the identical view, ties elsewhere."""
    n_subj = int(meta["subject"].max()) + 1
    idx = meta["subject"].to_numpy() * len(views) + meta["view"].map(views.index).to_numpy()
    return onehot(idx, n_subj * len(views))


def test_casia_shape_and_known_failures() -> None:
    views = ["000", "018", "036"]
    meta = casia_meta(range(3), views)
    emb = onehot(meta["subject"].to_numpy(), 3) + 0.01 * np.random.default_rng(0).standard_normal((len(meta), 3))
    # Subject 0's CL probes at view 018 look like subject 1: wrong against every gallery view.
    fake = ((meta["subject"] == 0) & (meta["condition"] == "cl") & (meta["view"] == "018")).to_numpy()
    emb[fake] = onehot(np.ones(fake.sum(), int), 3)
    result = evaluate(emb, meta, Protocol.from_config("casia-b", CASIA_SPEC))

    assert list(result.table.index) == ["nm", "bg", "cl"]
    assert list(result.table.columns) == views + ["mean"]
    assert result.table.loc["nm"].tolist() == [1.0] * 4
    assert result.table.loc["bg"].tolist() == [1.0] * 4
    np.testing.assert_allclose(result.table.loc["cl", views], [1.0, 2 / 3, 1.0])
    np.testing.assert_allclose(result.mean_rank1, (1 + 1 + (1 + 2 / 3 + 1) / 3) / 3)
    cell = result.cells.query("condition == 'cl' and probe_view == '018' and gallery_view == '000'").iloc[0]
    assert (cell.correct, cell.total) == (4, 6)  # 3 subjects x 2 CL sequences, subject 0's two are wrong
    assert len(result.cells) == 3 * 3 * 3


def test_identical_view_exclusion_and_tie_rule() -> None:
    views = ["000", "018", "036", "054"]
    meta = casia_meta(range(4), views)
    emb = subject_view_onehot(meta, views)
    excl = evaluate(emb, meta, Protocol.from_config("x", CASIA_SPEC))
    incl = evaluate(emb, meta, Protocol.from_config("x", {**CASIA_SPEC, "exclude_identical_view": False}))
    # Identical view: exact match. Other views: every gallery sequence is equally far, the first gallery
    # sequence in meta order (subject 0) wins, so 1 subject in 4 is right.
    diag = excl.cells[excl.cells.probe_view == excl.cells.gallery_view]
    off = excl.cells[excl.cells.probe_view != excl.cells.gallery_view]
    assert (diag.rank1 == 1.0).all() and np.allclose(off.rank1, 0.25)
    np.testing.assert_allclose(excl.table.to_numpy(), 0.25)
    np.testing.assert_allclose(incl.table.to_numpy(), (1 + 3 * 0.25) / 4)
    assert excl.mean_rank1 == pytest.approx(0.25) and incl.mean_rank1 == pytest.approx(0.4375)


@pytest.mark.parametrize(
    "gallery_order, correct, ap", [((7, 5, 9), 0, 1 / 2), ((5, 9, 7), 1, 1.0), ((9, 7, 5), 0, 1 / 3)]
)
def test_tie_goes_to_first_gallery_row_in_meta_order(gallery_order: tuple, correct: int, ap: float) -> None:
    spec = {"gallery": {"seq": [0]}, "probes": {"p": {"seq": [1]}}, "exclude_identical_view": False}
    rows = [(5, "nm", 1, "0")] + [(s, "nm", 0, "0") for s in gallery_order]  # probe placed first: order irrelevant
    emb = np.ones((4, 2), np.float32)  # all identical: every distance ties
    result = evaluate(emb, make_meta(rows), Protocol.from_config("t", spec))
    # Tied gallery sequences rank in meta order, for rank-1 and for AP alike.
    assert result.cells.correct.tolist() == [correct]
    assert result.mean_map == pytest.approx(ap)


def test_missing_gallery_view_fail_and_skip() -> None:
    views = ["000", "018"]
    meta = casia_meta(range(3), views)
    drop = (meta.subject == 2) & (meta.condition == "nm") & (meta.seq <= 4) & (meta.view == "018")
    meta = meta[~drop].reset_index(drop=True)
    emb = onehot(meta["subject"].to_numpy(), 3)
    fail = evaluate(emb, meta, Protocol.from_config("f", {**CASIA_SPEC, "exclude_identical_view": False}))
    skip = evaluate(
        emb, meta, Protocol.from_config("s", {**CASIA_SPEC, "exclude_identical_view": False, "missing_gallery": "skip"})
    )
    at_018 = fail.cells[fail.cells.gallery_view == "018"]
    assert at_018.total.tolist() == [6] * 6  # per condition and probe view: 3 subjects x 2 sequences
    assert np.allclose(at_018.rank1, 2 / 3)
    assert (skip.cells[skip.cells.gallery_view == "018"].total.tolist()) == [4, 4, 4, 4, 4, 4]
    assert (skip.cells.rank1 == 1.0).all() and skip.mean_rank1 == 1.0
    assert fail.mean_rank1 == pytest.approx((1 + 2 / 3) / 2)
    assert fail.cells.query("gallery_view == '018'")["map"].max() == pytest.approx(2 / 3)


@pytest.mark.parametrize("name, expected", [("gaitgraph2", (1 + 2 * 0.25) / 3), ("standard", 0.25)])
def test_oumvlp_both_variants(name: str, expected: float) -> None:
    views = ["000", "015", "090"]
    meta = make_meta([(s, "nm", q, v) for s in range(4) for q in (0, 1) for v in views])
    protocols = {k: Protocol.from_config(k, v) for k, v in yaml.safe_load(OUMVLP_YAML).items()}
    result = evaluate(subject_view_onehot(meta, views), meta, protocols[name])
    assert result.exclude_identical_view is (name == "standard")
    assert list(result.table.index) == (["01"] if name == "gaitgraph2" else ["00"])
    assert result.mean_rank1 == pytest.approx(expected)
    if name == "gaitgraph2":  # G2's "overall" is the mean of all 14x14 cells, diagonal included
        assert result.mean_rank1 == pytest.approx(result.cells.rank1.mean())


def test_map_known_ranking() -> None:
    angles = np.deg2rad([0, 10, 20, 30, 40])
    emb = np.stack([np.cos(angles), np.sin(angles)], 1)
    # probe (subject 0), gallery in distance order: s1, s0, s1, s0 -> AP = (1/2 + 2/4) / 2
    meta = make_meta([(0, "nm", 1, "0"), (1, "nm", 0, "0"), (0, "nm", 0, "0"), (1, "nm", 0, "0"), (0, "nm", 0, "0")])
    spec = {"gallery": {"seq": [0]}, "probes": {"p": {"seq": [1]}}, "exclude_identical_view": False}
    result = evaluate(emb, meta, Protocol.from_config("m", spec))
    assert result.mean_rank1 == 0.0
    assert result.mean_map == pytest.approx(0.5)
    assert result.map_table.loc["p", "mean"] == pytest.approx(0.5)


def naive(emb: np.ndarray, meta: pd.DataFrame, protocol: Protocol) -> dict[tuple[str, str, str], tuple[float, float]]:
    """Per-probe loop with an explicit (distance, meta index) sort: the definition, slowly."""
    emb = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    gal = meta.index[meta.seq.isin(protocol.gallery["seq"])]
    out = {}
    for cond, q in protocol.probes.items():
        probes = meta.index[meta.seq.isin(q["seq"])]
        for p in sorted(meta.view.unique()):
            for g in sorted(meta.view.unique()):
                gal_g = [i for i in gal if meta.view[i] == g]
                hits, aps = [], []
                for i in probes[meta.view[probes] == p]:
                    d = np.linalg.norm(emb[gal_g] - emb[i], axis=1)
                    order = np.lexsort((np.arange(len(gal_g)), d))
                    match = meta.subject.to_numpy()[gal_g][order] == meta.subject[i]
                    hits.append(match[0])
                    ranks = np.flatnonzero(match) + 1
                    aps.append(np.mean(np.arange(1, len(ranks) + 1) / ranks) if len(ranks) else 0.0)
                out[(cond, p, g)] = (np.mean(hits), np.mean(aps))
    return out


@pytest.mark.parametrize("kind", ["random", "tied"])
def test_matches_naive_definition_in_any_block_size(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    rng = np.random.default_rng(1)
    views = ["a", "b", "c"]
    rows = [(s, "nm", q, v) for s in range(12) for q in range(4) for v in views if rng.random() > 0.15]
    meta = make_meta(rows)
    if kind == "random":
        emb = (onehot(meta.subject.to_numpy(), 12) * 0.5 + rng.standard_normal((len(meta), 12))).astype(np.float32)
    else:  # 3 distinct unit vectors shared by everyone: exact ties everywhere, several positives per probe
        emb = onehot(rng.integers(0, 3, len(meta)), 3)
    spec = {
        "gallery": {"seq": [0, 1]},
        "probes": {"x": {"seq": [2]}, "y": {"seq": [3]}},
        "exclude_identical_view": True,
    }
    protocol = Protocol.from_config("r", spec)
    expected = naive(emb, meta, protocol)
    for block in (metrics.BLOCK_ELEMENTS, 7):
        monkeypatch.setattr(metrics, "BLOCK_ELEMENTS", block)
        for distance in ("euclidean", "cosine"):
            result = evaluate(torch.from_numpy(emb), meta, protocol, distance=distance)
            got = {(r.condition, r.probe_view, r.gallery_view): (r.rank1, r["map"]) for _, r in result.cells.iterrows()}
            assert got.keys() == expected.keys()
            for key, (r1, ap) in expected.items():
                assert got[key] == pytest.approx((r1, ap), abs=1e-6), key
    assert 0 < result.mean_rank1 < 1


def test_to_dict_is_json_and_round_trips() -> None:
    views = ["000", "018"]
    meta = casia_meta(range(2), views)
    result = evaluate(onehot(meta["subject"].to_numpy(), 2), meta, Protocol.from_config("c", CASIA_SPEC))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["protocol"] == "c" and data["exclude_identical_view"] is True
    assert data["table"]["nm"]["mean"] == 1.0 and len(data["cells"]) == 3 * 2 * 2
    back = EvalResult.from_dict(data)
    pd.testing.assert_frame_equal(back.table, result.table, check_names=False)
    assert back.mean_rank1 == result.mean_rank1 and back.cells.correct.tolist() == result.cells.correct.tolist()


def test_input_errors() -> None:
    meta = casia_meta(range(2), ["000"])
    protocol = Protocol.from_config("c", CASIA_SPEC)
    with pytest.raises(ValueError, match="metadata rows"):
        evaluate(np.ones((3, 4)), meta, protocol)
    with pytest.raises(NonFiniteError, match=rf"of {len(meta)} of {len(meta)} sequences \(first: \{{'subject': 0"):
        evaluate(np.full((len(meta), 4), np.nan), meta, protocol)
    with pytest.raises(ValueError, match="distance"):
        evaluate(np.ones((len(meta), 4)), meta, protocol, distance="manhattan")
    overlap = Protocol.from_config("o", {**CASIA_SPEC, "probes": {"nm": {"condition": ["nm"]}}})
    with pytest.raises(ConfigError, match="8 sequences are in both"):
        evaluate(np.ones((len(meta), 4)), meta, overlap)
    # One view and the identical view excluded: no cell to average, which must not pass as a metric.
    with pytest.raises(ValueError, match="nothing to score"):
        evaluate(np.ones((len(meta), 4)), meta, protocol)


# Part-based embeddings [S, D, P] (GPGait): the distance is the mean over parts of each part's distance.
PART_SPEC = {"gallery": {"seq": [0]}, "probes": {"p": {"seq": [1]}}, "exclude_identical_view": False}
PART_META = make_meta([(1, "nm", 1, "0"), (1, "nm", 0, "0"), (2, "nm", 0, "0")])  # probe of 1; galleries 1, 2


def test_part_based_euclidean_is_the_mean_of_part_distances() -> None:
    # D=1, P=2: subject 1's gallery is (3, 0) from the probe (0, 0), subject 2's (2, 2). Mean of part distances:
    # 1.5 vs 2 -> subject 1 first. One concatenated vector would rank 2 first (sqrt 8 < 3), normalising too.
    emb = np.array([[[0.0, 0.0]], [[3.0, 0.0]], [[2.0, 2.0]]], np.float32)
    result = evaluate(emb, PART_META, Protocol.from_config("parts", PART_SPEC))
    assert result.cells.correct.tolist() == [1] and result.mean_map == 1.0
    # Subject 2's gallery at (1.4, 1.4) is 1.4 < 1.5 away on average: the answer flips.
    emb[2, 0] = [1.4, 1.4]
    assert evaluate(emb, PART_META, Protocol.from_config("parts", PART_SPEC)).cells.correct.tolist() == [0]


def test_part_based_distance_values(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = metrics._positive_ranks

    def spy(key, *args):
        seen.append(key.clone())
        return original(key, *args)

    monkeypatch.setattr(metrics, "_positive_ranks", spy)
    emb = np.array([[[0.0, 0.0]], [[3.0, 0.0]], [[2.0, 2.0]]], np.float32)
    evaluate(emb, PART_META, Protocol.from_config("parts", PART_SPEC))
    np.testing.assert_allclose(seen[0].numpy(), [[1.5, 2.0]], rtol=1e-6)


def test_part_based_cosine_normalises_each_part() -> None:
    # D=2, P=2. Probe parts point along x and y. Gallery 1: part 0 along x (cos 1), part 1 along x (cos 0): mean 0.5.
    # Gallery 2: both parts at 45 degrees (cos 0.707 each): mean 0.707 -> nearer. Part scales must not matter.
    probe = [[1.0, 0.0], [0.0, 1.0]]  # [D, P]: part 0 = (1, 0), part 1 = (0, 1)
    g1 = [[10.0, 0.1], [0.0, 0.0]]  # part 0 = (10, 0), part 1 = (0.1, 0)
    g2 = [[1.0, 5.0], [1.0, 5.0]]  # part 0 = (1, 1), part 1 = (5, 5)
    emb = np.array([probe, g1, g2], np.float32)
    result = evaluate(emb, PART_META, Protocol.from_config("parts", PART_SPEC), distance="cosine")
    assert result.cells.correct.tolist() == [0]  # subject 2 wins
    emb[2] = [[1.0, 5.0], [1.0, 0.0]]  # gallery 2: part 0 along x+y (0.707), part 1 along x (0): mean 0.354
    result = evaluate(emb, PART_META, Protocol.from_config("parts", PART_SPEC), distance="cosine")
    assert result.cells.correct.tolist() == [1]
