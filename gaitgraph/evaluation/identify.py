"""Identify probes against an enrolled gallery: per probe the ``k`` nearest gallery identities with distances.

The distance is the one :mod:`gaitgraph.evaluation.metrics` ranks by: on L2-normalised embeddings, Euclidean or
cosine (``1 - cos``). An identity's distance is that of its nearest gallery sequence. Identities at exactly the
same distance are ordered by their first appearance in the gallery.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gaitgraph.evaluation.metrics import BLOCK_ELEMENTS, DISTANCES


def identify(
    probes: np.ndarray,
    gallery: np.ndarray,
    identities: np.ndarray | pd.Series,
    top_k: int = 5,
    distance: str = "euclidean",
) -> tuple[np.ndarray, np.ndarray]:
    """(identities [P, k], distances [P, k]) of the ``k`` nearest gallery identities of each probe, nearest
    first (``k`` = ``top_k``, or fewer when the gallery holds fewer identities)."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}, found {distance!r}")
    if probes.ndim != 2 or gallery.ndim != 2 or probes.shape[1] != gallery.shape[1]:
        raise ValueError(f"probe embeddings {probes.shape} and gallery embeddings {gallery.shape} do not match")
    codes, names = pd.factorize(pd.Series(identities))  # codes in order of first appearance
    k = min(int(top_k), len(names))
    q = F.normalize(torch.as_tensor(probes).float(), dim=1)
    g = F.normalize(torch.as_tensor(gallery).float(), dim=1)
    # The ranking key of metrics._GalleryView (|g|^2 - 2 q.g, or -q.g), so the order is the same as there.
    weight, bias = (-2.0 * g, (g * g).sum(1)) if distance == "euclidean" else (-g, torch.zeros(len(g)))
    index = torch.as_tensor(codes).expand(1, -1)
    block = max(1, BLOCK_ELEMENTS // max(1, len(g)))
    found, dists = [np.zeros((0, k), dtype=np.int64)], [np.zeros((0, k), dtype=np.float32)]
    for start in range(0, len(q), block):
        qb = q[start : start + block]
        key = torch.addmm(bias, qb, weight.T)
        nearest = torch.full((len(qb), len(names)), torch.inf).scatter_reduce(
            1, index.expand(len(qb), -1), key, reduce="amin"
        )
        order = torch.sort(nearest, dim=1, stable=True).indices[:, :k]
        best = nearest.gather(1, order)
        if distance == "euclidean":
            best = (best + (qb * qb).sum(1, keepdim=True)).clamp_min(0).sqrt()
        else:
            best = 1.0 + best
        found.append(order.numpy())
        dists.append(best.numpy())
    return np.asarray(names)[np.concatenate(found)], np.concatenate(dists)


def identities_table(probe_meta: pd.DataFrame, found: np.ndarray, distances: np.ndarray) -> pd.DataFrame:
    """One row per probe: its metadata (``probe_<column>``), then ``identity_1, distance_1, ...``."""
    table = probe_meta.reset_index(drop=True).add_prefix("probe_")
    for rank in range(found.shape[1]):
        table[f"identity_{rank + 1}"] = found[:, rank]
        table[f"distance_{rank + 1}"] = distances[:, rank]
    return table
