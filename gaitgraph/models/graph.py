"""Hop-distance adjacency of a skeleton ("distance" partitioning, docs/original-network.md#graph-partitioning)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gaitgraph.errors import ConfigError


def hop_distance(num_joints: int, links: Sequence[Sequence[int]], max_hop: int) -> np.ndarray:
    """[V, V] shortest-path hop count between joints; ``inf`` beyond ``max_hop``."""
    link = np.eye(num_joints, dtype=bool)
    for a, b in links:
        if not (0 <= a < num_joints and 0 <= b < num_joints):
            raise ConfigError("keypoints.links", [a, b], f"joints in 0..{num_joints - 1}")
        link[a, b] = link[b, a] = True
    hop = np.full((num_joints, num_joints), np.inf)
    # reach[d] is "reachable in at most d steps"; the first d at which a pair becomes reachable is its hop.
    reach = np.eye(num_joints, dtype=bool)
    hop[reach] = 0
    step = link.astype(np.int64)
    for d in range(1, max_hop + 1):
        reach = (reach.astype(np.int64) @ step) > 0
        hop[reach & np.isinf(hop)] = d
    return hop


def hop_adjacency(num_joints: int, links: Sequence[Sequence[int]], max_hop: int = 3) -> np.ndarray:
    """float32 [max_hop+1, V, V]: column-normalised adjacency over the <=max_hop neighbourhood, split by hop.

    ``A[h][i, j] = 1/deg(j)`` when joints i and j are exactly h hops apart, where deg(j) counts the joints
    within ``max_hop`` hops of j (itself included), so the columns of ``A.sum(0)`` are 1.
    """
    hop = hop_distance(num_joints, links, max_hop)
    within = (hop <= max_hop).astype(np.float64)
    normalised = within / within.sum(axis=0, keepdims=True)
    parts = np.stack([np.where(hop == h, normalised, 0.0) for h in range(max_hop + 1)])
    return parts.astype(np.float32)
