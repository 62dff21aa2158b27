"""Identify probes against an enrolled gallery: per probe the ``k`` nearest gallery identities with distances.

The distance is the one :mod:`gaitgraph.evaluation.metrics` ranks by (:func:`~gaitgraph.evaluation.metrics.
normalized_embeddings` prepares both sides the same way): on L2-normalised embeddings [S, D], Euclidean or cosine
(``1 - cos``); on part-based embeddings [S, D, P] (GPGait), the mean over parts of each part's distance (Euclidean
on the parts as they are, cosine on unit parts). An identity's distance is that of its nearest gallery sequence.
Identities at exactly the same distance are ordered by their first appearance in the gallery.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from gaitgraph.evaluation.metrics import normalized_embeddings, probe_block


def identify(
    probes: np.ndarray,
    gallery: np.ndarray,
    identities: np.ndarray | pd.Series,
    top_k: int = 5,
    distance: str = "euclidean",
) -> tuple[np.ndarray, np.ndarray]:
    """(identities [P, k], distances [P, k]) of the ``k`` nearest gallery identities of each probe, nearest
    first (``k`` = ``top_k``, or fewer when the gallery holds fewer identities).

    ``probes`` and ``gallery``: [N, D] or part-based [N, D, P], both of one shape per row and finite (a
    :class:`~gaitgraph.errors.NonFiniteError` otherwise); ``distance``: euclidean or cosine (ConfigError)."""
    if probes.ndim not in (2, 3) or probes.shape[1:] != gallery.shape[1:] or len(gallery) == 0:
        raise ValueError(f"probe embeddings {probes.shape} and gallery embeddings {gallery.shape} do not match")
    q, g = (normalized_embeddings(x, pd.DataFrame(index=range(len(x))), distance) for x in (probes, gallery))
    codes, names = pd.factorize(pd.Series(identities))  # codes in order of first appearance
    k = min(int(top_k), len(names))
    index = torch.as_tensor(codes).expand(1, -1)
    block = probe_block(len(g))
    found, dists = [np.zeros((0, k), dtype=np.int64)], [np.zeros((0, k), dtype=np.float32)]
    for start in range(0, len(q), block):
        qb = q[start : start + block]
        # one row would take the matrix-vector product, whose rounding differs from the blocked product's in the
        # last bit: a lone row goes in twice, so the distances do not depend on the block size
        key = (
            _ranking_key(qb, g, distance) if len(qb) > 1 else _ranking_key(qb.expand(2, *qb.shape[1:]), g, distance)[:1]
        )
        nearest = torch.full((len(qb), len(names)), torch.inf).scatter_reduce(
            1, index.expand(len(qb), -1), key, reduce="amin"
        )
        order = torch.sort(nearest, dim=1, stable=True).indices[:, :k]
        best = nearest.gather(1, order)
        if g.ndim == 2 and distance == "euclidean":
            best = (best + (qb * qb).sum(1, keepdim=True)).clamp_min(0).sqrt()
        elif g.ndim == 2:
            best = 1.0 + best
        # part-based Euclidean: the key is the distance itself
        found.append(order.numpy())
        dists.append(best.numpy())
    return np.asarray(names)[np.concatenate(found)], np.concatenate(dists)


def _ranking_key(q: torch.Tensor, g: torch.Tensor, distance: str) -> torch.Tensor:
    """[B, G] key monotone in the distance, computed as metrics._GalleryView does (so the order is the same as
    there): ``|g|^2 - 2 q.g`` (Euclidean), ``-q.g`` (cosine), the mean of the part distances (part-based)."""
    if g.ndim == 3:
        out = torch.zeros(len(q), len(g))
        for p in range(g.shape[2]):
            qp, gp = q[:, :, p], g[:, :, p].contiguous()
            sq = torch.addmm((gp * gp).sum(1), qp, gp.T, alpha=-2)
            out.add_(sq.add_((qp * qp).sum(1, keepdim=True)).relu_().sqrt_())
        return out.div_(g.shape[2])
    if distance == "euclidean":
        return torch.addmm((g * g).sum(1), q, -2.0 * g.T)
    return torch.addmm(torch.zeros(len(g)), q, -g.T)


def identities_table(probe_meta: pd.DataFrame, found: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
    """One row per probe: its metadata (``probe_<column>``), then ``identity_1, distance_1, ...``."""
    table = probe_meta.reset_index(drop=True).add_prefix("probe_")
    for rank in range(found.shape[1]):
        table[f"identity_{rank + 1}"] = found[:, rank]
        table[f"distance_{rank + 1}"] = distances[:, rank]
    return table
