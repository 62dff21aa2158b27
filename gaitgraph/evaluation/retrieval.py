"""Retrieval scoring: every probe ranked against the whole gallery (GREW, Gait3D; docs/protocols-retrieval.md).

For one probe, the gallery is ordered by distance to it (ties: the gallery sequence earlier in ``meta``
first), and ``matches[j]`` says whether the j-th nearest gallery sequence has the probe's subject. Then:

- rank-k hit: some match among the first k;
- AP (average precision): the mean, over the matches at 1-based positions p_1 < ... < p_n, of i / p_i;
- INP (inverse negative penalty): n / p_n, the share of the list up to the hardest match that is matches.

Rank-k accuracy, mAP and mINP are means over the scored probes: all probes with ``missing_gallery: fail``
(a probe without any match is a miss with AP = INP = 0, GREW's rule) or only those with a match with
``skip`` (Gait3D's benchmark code). Distances are computed on L2-normalised embeddings, and part-based ones
[S, D, P] at the mean over parts of each part's distance, as :mod:`gaitgraph.evaluation.metrics` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from gaitgraph.errors import ConfigError
from gaitgraph.evaluation.metrics import _num, normalized_embeddings, probe_block
from gaitgraph.evaluation.protocols import RetrievalProtocol, select

#: Gallery identities per probe in GREW's submission CSV (``videoId,rank1,...,rank20``).
SUBMISSION_RANKS = 20


@dataclass
class RetrievalResult:
    """What :func:`evaluate_retrieval` returns; rates are fractions in [0, 1], NaN when no probe is scored.

    ``submission`` (when the protocol asks): one row per probe, its id (last part of its ``source``) and the
    subjects of its nearest gallery sequences, nearest first.
    """

    protocol: str
    distance: str
    missing_gallery: str
    rank_rates: dict[int, float]
    mean_map: float
    mean_inp: float
    n_probes: int
    n_scored: int
    n_gallery: int
    submission: pd.DataFrame | None = field(default=None, repr=False)

    kind = "retrieval"

    @property
    def mean_rank1(self) -> float:
        """Rank-1 accuracy: the selection metric, named as for the per-view protocols."""
        return self.rank_rates[1]

    @property
    def table(self) -> pd.DataFrame:
        """One row ("all probes"): rank-k accuracies, mAP and mINP."""
        row = {f"rank-{k}": v for k, v in self.rank_rates.items()} | {"mAP": self.mean_map, "mINP": self.mean_inp}
        return pd.DataFrame([row], index=pd.Index(["all"], name="probes"))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None); the submission rows are written to their own CSV."""
        return {
            "kind": self.kind,
            "protocol": self.protocol,
            "distance": self.distance,
            "missing_gallery": self.missing_gallery,
            "mean_rank1": _num(self.mean_rank1),
            "mean_map": _num(self.mean_map),
            "mean_inp": _num(self.mean_inp),
            "ranks": {str(k): _num(v) for k, v in self.rank_rates.items()},
            "n_probes": self.n_probes,
            "n_scored": self.n_scored,
            "n_gallery": self.n_gallery,
        }


def match_statistics(matches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per row of ``matches`` [B, G] (bool, gallery in ranked order): first-match rank, AP, INP.

    The first-match rank is 1-based, 0 when the row has no match; AP and INP are 0 then.
    """
    m = matches.to(torch.float64)
    n = m.sum(1)
    position = torch.arange(1, m.shape[1] + 1, dtype=torch.float64, device=m.device)
    ap = (m * m.cumsum(1) / position).sum(1) / n.clamp_min(1)
    last = (m * position).amax(1) if m.shape[1] else torch.zeros_like(n)
    inp = n / last.clamp_min(1)
    first = torch.where(n > 0, m.argmax(1) + 1, 0)  # argmax: the first of equal maxima
    return first, ap, inp


def ranked_gallery(distances: torch.Tensor) -> torch.Tensor:
    """Gallery indices per probe row, nearest first; equal distances keep gallery order (a stable sort)."""
    return torch.sort(distances, dim=1, stable=True).indices


def pairwise_distances(probes: torch.Tensor, gallery: torch.Tensor, distance: str) -> torch.Tensor:
    """[P, G] distances between rows as :func:`normalized_embeddings` leaves them: "euclidean" or "cosine" (1 -
    cosine similarity). Part-based rows [., D, parts] (Euclidean only; cosine ones arrive flattened) are at the
    mean over parts of each part's distance, as :mod:`gaitgraph.evaluation.metrics` and FastPoseGait score them."""
    if distance == "euclidean" and probes.ndim == 3:
        return torch.cdist(probes.permute(2, 0, 1), gallery.permute(2, 0, 1)).mean(0)
    if distance == "euclidean":
        return torch.cdist(probes, gallery)
    return 1.0 - probes @ gallery.T


def evaluate_retrieval(
    embeddings: np.ndarray | torch.Tensor,
    meta: pd.DataFrame,
    protocol: RetrievalProtocol,
    distance: str = "euclidean",
) -> RetrievalResult:
    """Score ``embeddings`` [S, D] or part-based [S, D, P] (row i = ``meta`` row i) under a retrieval ``protocol``."""
    emb = normalized_embeddings(embeddings, meta, distance)
    meta = meta.reset_index(drop=True)
    probe_rows, gallery_rows = split_rows(meta, protocol)
    subject = torch.tensor(meta["subject"].to_numpy(np.int64), device=emb.device)
    g_emb, g_subj = emb[gallery_rows], subject[gallery_rows]
    keep = min(SUBMISSION_RANKS, len(gallery_rows)) if protocol.submission else max(protocol.ranks)
    parts = emb.shape[2] if emb.ndim == 3 else 1  # a part-based block holds one [B, G] distance table per part
    block = probe_block(len(gallery_rows), parts)
    stats, nearest = [], []
    for start in range(0, len(probe_rows), block):
        rows = torch.as_tensor(probe_rows[start : start + block], device=emb.device)
        order = ranked_gallery(pairwise_distances(emb[rows], g_emb, distance))
        stats.append(match_statistics(g_subj[order] == subject[rows][:, None]))
        nearest.append(g_subj[order[:, :keep]].cpu())
    first, ap, inp = (torch.cat(column) for column in zip(*stats))
    result = summarise(first, ap, inp, protocol, distance, len(gallery_rows))
    if protocol.submission:
        result.submission = submission_table(meta["source"].to_numpy()[probe_rows], torch.cat(nearest).numpy())
    elif result.n_scored == 0:
        raise ConfigError(
            f"dataset.protocols.{protocol.name}",
            protocol.name,
            "a protocol with some probe to score: no probe has a true match in the gallery; nothing to score",
            hint="missing_gallery: skip scores only the probes with a match; or check the gallery query",
        )
    return result


def split_rows(meta: pd.DataFrame, protocol: RetrievalProtocol) -> tuple[np.ndarray, np.ndarray]:
    """Row numbers of the probes and of the gallery (``gallery: others`` = every non-probe row)."""
    where = f"dataset.protocols.{protocol.name}"
    probes = select(meta, protocol.probes, f"{where}.probes")
    gallery = ~probes if protocol.gallery is None else select(meta, protocol.gallery, f"{where}.gallery")
    both = np.flatnonzero(probes & gallery)
    if len(both):
        raise ConfigError(
            f"{where}.probes",
            protocol.probes,
            f"probes apart from the gallery: {len(both)} sequences are in both (e.g. meta row {both[0]})",
        )
    if not gallery.any():
        raise ConfigError(f"{where}.gallery", protocol.gallery or "others", "a gallery that holds some sequence")
    return np.flatnonzero(probes), np.flatnonzero(gallery)


def summarise(
    first: torch.Tensor, ap: torch.Tensor, inp: torch.Tensor, protocol: RetrievalProtocol, distance: str, n_gallery: int
) -> RetrievalResult:
    """Means over the scored probes (see the module doc) of the per-probe first-match rank, AP and INP."""
    scored = first > 0 if protocol.missing_gallery == "skip" else torch.ones_like(first, dtype=torch.bool)
    n = int(scored.sum())
    hit = first[scored]

    def mean(x: torch.Tensor) -> float:
        return float(x.to(torch.float64).mean()) if n else math.nan

    return RetrievalResult(
        protocol=protocol.name,
        distance=distance,
        missing_gallery=protocol.missing_gallery,
        rank_rates={k: mean((hit > 0) & (hit <= k)) for k in sorted(protocol.ranks)},
        mean_map=mean(ap[scored]),
        mean_inp=mean(inp[scored]),
        n_probes=len(first),
        n_scored=n,
        n_gallery=n_gallery,
    )


def submission_table(sources: np.ndarray, nearest: np.ndarray) -> pd.DataFrame:
    """GREW's submission rows: ``videoId`` (the last part of each probe's source), then ``rank1``..``rankK``."""
    table = pd.DataFrame(nearest, columns=[f"rank{k + 1}" for k in range(nearest.shape[1])])
    table.insert(0, "videoId", [str(s).rstrip("/").rsplit("/", 1)[-1] for s in sources])
    return table
