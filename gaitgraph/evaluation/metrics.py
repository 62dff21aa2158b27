"""Rank-1 and mAP of a gallery/probe protocol over embeddings (docs/protocols.md#metrics).

Scoring, per probe condition c, probe view p and gallery view g: every probe of (c, p) is matched
against the gallery sequences AT VIEW g ONLY. Rank-1 is correct when the nearest gallery sequence has
the probe's subject; AP ranks that view's gallery by distance. Distances are computed on L2-normalised
embeddings: "euclidean" (the reference's LpDistance) or "cosine" (1 - cosine similarity).

Part-based embeddings [S, D, P] (GPGait's 19 parts) are scored as FastPoseGait's evaluator does: the distance is
the mean over parts of each part's distance; "euclidean" uses the parts as they are (no normalisation; GPGait's
are already unit length per part), "cosine" normalises each part over D first.

Ties: the gallery is ordered by (distance, position in ``meta``); the first gallery sequence in meta
order wins a tied rank-1, and tied sequences are ranked in meta order for AP as well. The result does not
depend on the order of the probes.

Aggregation (CASIA-B table, docs/protocols.md#casia-b): the per-probe-view value is the mean of the cell values over
gallery views (identical view left out when ``exclude_identical_view``), a condition's value is the mean
over probe views, and ``mean_rank1`` (the selection metric) is the mean over conditions. Cells without
probes (only possible with ``missing_gallery: skip`` or absent data) are NaN and left out of the means.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from gaitgraph.errors import ConfigError, NonFiniteError
from gaitgraph.evaluation.protocols import Protocol, select
from gaitgraph.progress import progress as progress_bar

DISTANCES = ("euclidean", "cosine")
#: The scoring memory budget, in elements of the [probes x gallery] distance tables of one probe block (8 MB of
#: floats): small enough that the comparison passes over it run from cache right after the matmul wrote it, large
#: enough for an efficient matmul. Every scorer (here, retrieval, identify) scores its probes in blocks of
#: :func:`probe_block` rows, so no [probes x gallery] table is ever whole (an OUMVLP gallery of 10k subjects too).
BLOCK_ELEMENTS = 1 << 21


def probe_block(columns: int, tables: int = 1) -> int:
    """Probe rows per block so that ``tables`` [rows, columns] tables hold at most :data:`BLOCK_ELEMENTS` elements
    (at least one row). Read at call time, so a caller or a test can lower the budget."""
    return max(1, BLOCK_ELEMENTS // max(1, columns * tables))


@dataclass
class EvalResult:
    """What :func:`evaluate` returns; values are fractions in [0, 1].

    cells: one row per (condition, probe_view, gallery_view) with correct, total, rank1, map.
    table / map_table: rows = probe conditions, columns = probe views + "mean".
    """

    protocol: str
    exclude_identical_view: bool
    missing_gallery: str
    distance: str
    views: list[str]
    cells: pd.DataFrame
    table: pd.DataFrame
    map_table: pd.DataFrame
    mean_rank1: float
    mean_map: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN becomes None)."""
        return {
            "protocol": self.protocol,
            "exclude_identical_view": self.exclude_identical_view,
            "missing_gallery": self.missing_gallery,
            "distance": self.distance,
            "views": list(self.views),
            "mean_rank1": _num(self.mean_rank1),
            "mean_map": _num(self.mean_map),
            "table": _table_dict(self.table),
            "map_table": _table_dict(self.map_table),
            "cells": [
                {
                    k: _num(v) if isinstance(v, float) else (int(v) if isinstance(v, np.integer) else v)
                    for k, v in row.items()
                }
                for row in self.cells.to_dict(orient="records")
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        """Inverse of :meth:`to_dict` (e.g. to reload a saved baseline)."""
        cells = pd.DataFrame(data["cells"], columns=list(_CELL_COLUMNS)).astype({"rank1": float, "map": float})
        return cls(
            protocol=data["protocol"],
            exclude_identical_view=data["exclude_identical_view"],
            missing_gallery=data["missing_gallery"],
            distance=data["distance"],
            views=list(data["views"]),
            cells=cells,
            table=_table_from_dict(data["table"]),
            map_table=_table_from_dict(data["map_table"]),
            mean_rank1=_float(data["mean_rank1"]),
            mean_map=_float(data["mean_map"]),
        )


_CELL_COLUMNS = ("condition", "probe_view", "gallery_view", "correct", "total", "rank1", "map")


def evaluate(
    embeddings: np.ndarray | torch.Tensor,
    meta: pd.DataFrame,
    protocol: Protocol,
    distance: str = "euclidean",
    progress: bool = False,
) -> EvalResult:
    """Score ``embeddings`` [S, D] or part-based [S, D, P] (row i = ``meta`` row i) under ``protocol``.

    Runs on the embeddings' device (CUDA tensors stay on the GPU), in probe blocks per
    (probe view, gallery view) pair; ``progress`` shows a bar over probe views (worth it at OUMVLP scale on CPU).
    """
    emb = normalized_embeddings(embeddings, meta, distance)
    device = emb.device
    meta = meta.reset_index(drop=True)

    views = protocol.resolve_views(meta)
    view_code = _codes(meta["view"].astype(str).to_numpy(), views)
    subject = torch.as_tensor(pd.factorize(meta["subject"])[0], device=device)
    gallery, probe_rows_all, probe_cond_all = _split(meta, protocol, view_code >= 0)
    conditions = list(protocol.probes)

    n_c, n_v = len(conditions), len(views)
    correct = torch.zeros(n_c, n_v, n_v, dtype=torch.float64, device=device)
    total = torch.zeros_like(correct)
    ap_sum = torch.zeros_like(correct)
    galleries = [_GalleryView(emb, subject, np.flatnonzero(gallery & (view_code == g)), distance) for g in range(n_v)]
    largest = max(1, max(len(g.subject) for g in galleries))
    probe_view = view_code[probe_rows_all]
    # no block larger than the most probes at one view: a small evaluation allocates no more than it uses
    block = min(probe_block(largest), max(1, int(np.bincount(probe_view, minlength=1).max(initial=0))))
    work = _Workspace(block * largest, largest, device)

    for p in progress_bar(range(n_v), desc=f"evaluate {protocol.name}", unit="view", enabled=progress):
        at_p = probe_view == p
        rows = torch.as_tensor(probe_rows_all[at_p], device=device)
        conds = torch.as_tensor(probe_cond_all[at_p], device=device)
        for start in range(0, len(rows), block):
            q_rows, q_cond = rows[start : start + block], conds[start : start + block]
            q_emb, q_subj = emb[q_rows], subject[q_rows]
            for g, gal in enumerate(galleries):
                hit, ap, counted = gal.score(q_emb, q_subj, protocol.missing_gallery, work)
                total[:, p, g] += torch.bincount(q_cond[counted], minlength=n_c)
                correct[:, p, g] += torch.bincount(q_cond, weights=hit.double(), minlength=n_c)
                ap_sum[:, p, g] += torch.bincount(q_cond, weights=ap.double(), minlength=n_c)
    return _aggregate(
        protocol, distance, views, conditions, correct.cpu().numpy(), total.cpu().numpy(), ap_sum.cpu().numpy()
    )


def normalized_embeddings(embeddings: np.ndarray | torch.Tensor, meta: pd.DataFrame, distance: str) -> torch.Tensor:
    """``embeddings`` [S, D] or part-based [S, D, P], checked against ``meta`` and ``distance``, in float32 and
    ready to rank: [S, D] L2-normalised; part-based Euclidean unchanged; part-based cosine as one [S, D*P] vector
    of per-part unit vectors (its dot product is the sum of the parts' cosines)."""
    if distance not in DISTANCES:
        raise ConfigError("distance", distance, f"one of {', '.join(DISTANCES)}")
    emb = torch.as_tensor(embeddings).detach()
    if emb.ndim not in (2, 3) or emb.shape[0] != len(meta):
        raise ValueError(
            f"embeddings must be [S, D] or [S, D, P] with S = {len(meta)} metadata rows, found shape {tuple(emb.shape)}"
        )
    bad = ~torch.isfinite(emb.flatten(1)).all(dim=1)
    if bool(bad.any()):
        first = meta.iloc[int(bad.nonzero()[0, 0])].to_dict()
        raise NonFiniteError(
            f"the model's embeddings of {int(bad.sum())} of {len(meta)} sequences (first: {first}) contain NaN or "
            "infinite values: its weights diverged, or that input is degenerate (evaluate an earlier checkpoint, or "
            "retrain with a lower learning rate or trainer.grad_clip)"
        )
    emb = emb.float()
    if emb.ndim == 3 and distance == "euclidean":
        return emb
    if emb.ndim == 3:
        emb = F.normalize(emb, dim=1).flatten(1)
    return F.normalize(emb, dim=1)


def _split(meta: pd.DataFrame, protocol: Protocol, scored: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gallery mask, probe rows and their condition index (a row may serve several probe conditions)."""
    where = f"dataset.protocols.{protocol.name}"
    gallery = select(meta, protocol.gallery, f"{where}.gallery") & scored
    rows, conds = [], []
    for c, name in enumerate(protocol.probes):
        mask = select(meta, protocol.probes[name], f"{where}.probes.{name}") & scored
        both = np.flatnonzero(mask & gallery)
        if len(both):
            raise ConfigError(
                f"{where}.probes.{name}",
                protocol.probes[name],
                f"probes apart from the gallery: {len(both)} sequences are in both (e.g. meta row {both[0]}), "
                "a probe would match itself",
            )
        rows.append(np.flatnonzero(mask))
        conds.append(np.full(len(rows[-1]), c))
    return gallery, np.concatenate(rows), np.concatenate(conds)


class _GalleryView:
    """The gallery sequences at one view, ready to rank probe blocks against.

    Probes are ranked by a key monotone in the distance: ``|g|^2 - 2 q.g`` for Euclidean (``|q|^2`` is
    constant per probe) and ``-q.g`` for cosine, one fused matmul either way. Part-based Euclidean embeddings
    [S, D, P] are ranked by the distance itself, the mean over parts of ``sqrt(relu(|q|^2 + |g|^2 - 2 q.g))``.
    Each subject's gallery columns are looked up in a [subjects, positives] table instead of comparing every
    probe with every column.
    """

    def __init__(self, emb: torch.Tensor, subject: torch.Tensor, rows: np.ndarray, distance: str) -> None:
        index = torch.as_tensor(rows, device=emb.device)
        g = emb[index]
        self.subject = subject[index]
        self.parts = g.ndim == 3
        if self.parts:
            self.weight = g.permute(2, 0, 1).contiguous()  # [P, G, D]
            self.bias = (self.weight * self.weight).sum(-1)  # [P, G]
        elif distance == "euclidean":
            self.weight, self.bias = -2.0 * g, (g * g).sum(1)
        else:
            self.weight, self.bias = -g, torch.zeros(len(g), device=emb.device)
        codes = self.subject.cpu().numpy()
        # slots fill in gallery (= meta) order, so a subject's columns stay in the tie-break order
        slot = pd.Series(codes).groupby(codes).cumcount().to_numpy()
        table = np.full((int(subject.max()) + 1, int(slot.max()) + 1 if len(slot) else 1), -1, dtype=np.int64)
        table[codes, slot] = np.arange(len(codes))
        self.positives = torch.as_tensor(table, device=emb.device)

    def score(
        self, q: torch.Tensor, q_subj: torch.Tensor, missing_gallery: str, work: _Workspace
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per probe: rank-1 hit, AP, and whether it counts in the cell (probes without a match score 0)."""
        pos_cols = self.positives[q_subj]
        valid = pos_cols >= 0
        n_pos = valid.sum(1)
        counted = n_pos > 0 if missing_gallery == "skip" else torch.ones(len(q), dtype=torch.bool, device=q.device)
        if len(self.subject) == 0:
            zeros = torch.zeros(len(q), device=q.device)
            return zeros, zeros, counted
        key, _, _ = work.views(len(q), len(self.subject))
        if self.parts:
            self._part_distance(q, key)
        else:
            torch.addmm(self.bias, q, self.weight.T, out=key)
        rank = _positive_ranks(key, pos_cols, valid, work)
        hit = ((rank == 1) & valid).any(1).float()
        k = torch.arange(1, rank.shape[1] + 1, device=q.device)[None, :]
        precision = torch.where(valid, k / rank.sort(1).values, torch.zeros_like(rank, dtype=torch.float32))
        ap = precision.sum(1) / n_pos.clamp_min(1)
        return hit * counted, ap * counted, counted

    def _part_distance(self, q: torch.Tensor, out: torch.Tensor) -> None:
        """``out`` [B, G] = mean over parts of the Euclidean distance between q [B, D, P] and the gallery."""
        out.zero_()
        for p in range(self.weight.shape[0]):
            qp = q[:, :, p]
            sq = torch.addmm(self.bias[p], qp, self.weight[p].T, alpha=-2)
            out.add_(sq.add_((qp * qp).sum(1, keepdim=True)).relu_().sqrt_())
        out.div_(self.weight.shape[0])


class _Workspace:
    """Reused buffers: allocating a fresh multi-MB block per (probe block, gallery view) made the allocator
    hand pages back to the OS and fault them in again every time.

    Comparisons are written as 0/1 floats and counted with a matrix-vector product against ``ones``: on
    CPU that is several times faster than a bool mask and an integer ``sum``, and exact (counts < 2^24).
    """

    def __init__(self, elements: int, columns: int, device: torch.device) -> None:
        self.key = torch.empty(elements, dtype=torch.float32, device=device)
        self.flags = torch.empty(elements, dtype=torch.float32, device=device)
        self.ones = torch.ones(columns, dtype=torch.float32, device=device)

    def views(self, rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Contiguous [rows, cols] key and flag views, and a ones vector of length ``cols``."""
        n = rows * cols
        return self.key[:n].view(rows, cols), self.flags[:n].view(rows, cols), self.ones[:cols]


def _positive_ranks(key: torch.Tensor, pos_cols: torch.Tensor, valid: torch.Tensor, work: _Workspace) -> torch.Tensor:
    """[B, P] 1-based rank of each positive column when a row is ordered by (key, column) - the tie rule.

    pos_cols [B, P]: each row's positive columns (-1 = none); invalid slots get rank G + 1 so they sort last.
    """
    _, flags, ones = work.views(*key.shape)
    cols = pos_cols.clamp_min(0)
    key_pos = key.gather(1, cols)
    ranks = []
    for k in range(pos_cols.shape[1]):
        if not bool(valid[:, k].any()):  # no row has a k-th positive (subjects with fewer gallery sequences)
            ranks.append(torch.zeros(len(key), dtype=torch.int32, device=key.device))
            continue
        target = key_pos[:, k : k + 1]
        rank = torch.mv(torch.lt(key, target, out=flags), ones).to(torch.int32) + 1
        tied = torch.mv(torch.eq(key, target, out=flags), ones) > 1  # rare: resolve on those rows only
        if bool(tied.any()):
            rows = tied.nonzero().squeeze(1)
            earlier = torch.arange(key.shape[1], device=key.device) < cols[rows, k : k + 1]
            rank[rows] += ((key[rows] == target[rows]) & earlier).sum(1, dtype=torch.int32)
        ranks.append(rank)
    rank = torch.stack(ranks, 1)
    return torch.where(valid, rank, torch.full_like(rank, key.shape[1] + 1))


def _aggregate(
    protocol: Protocol,
    distance: str,
    views: list[str],
    conditions: list[str],
    correct: np.ndarray,
    total: np.ndarray,
    ap_sum: np.ndarray,
) -> EvalResult:
    with np.errstate(invalid="ignore", divide="ignore"):
        rank1 = np.where(total > 0, correct / total, np.nan)
        mean_ap = np.where(total > 0, ap_sum / total, np.nan)
    n_c, n_v = len(conditions), len(views)
    c_i, p_i, g_i = np.meshgrid(np.arange(n_c), np.arange(n_v), np.arange(n_v), indexing="ij")
    cells = pd.DataFrame(
        {
            "condition": np.asarray(conditions, dtype=object)[c_i.ravel()],
            "probe_view": np.asarray(views, dtype=object)[p_i.ravel()],
            "gallery_view": np.asarray(views, dtype=object)[g_i.ravel()],
            "correct": correct.ravel().astype(np.int64),
            "total": total.ravel().astype(np.int64),
            "rank1": rank1.ravel(),
            "map": mean_ap.ravel(),
        }
    )
    table = _table(rank1, protocol.exclude_identical_view, conditions, views)
    map_table = _table(mean_ap, protocol.exclude_identical_view, conditions, views)
    if table["mean"].isna().all():
        raise ConfigError(
            f"dataset.protocols.{protocol.name}",
            protocol.name,
            f"a protocol with some probe to score: no cell holds one (views {views}, exclude_identical_view="
            f"{protocol.exclude_identical_view}, missing_gallery={protocol.missing_gallery}); nothing to score",
        )
    return EvalResult(
        protocol=protocol.name,
        exclude_identical_view=protocol.exclude_identical_view,
        missing_gallery=protocol.missing_gallery,
        distance=distance,
        views=list(views),
        cells=cells,
        table=table,
        map_table=map_table,
        mean_rank1=float(np.nanmean(table["mean"])),
        mean_map=float(np.nanmean(map_table["mean"])),
    )


def _table(values: np.ndarray, exclude_identical: bool, conditions: list[str], views: list[str]) -> pd.DataFrame:
    """[C, P, G] cell values -> rows = conditions, columns = probe views + "mean"."""
    values = values.copy()
    if exclude_identical:
        diag = np.arange(len(views))
        values[:, diag, diag] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices are meant to stay NaN
        per_view = np.nanmean(values, axis=2)
        mean = np.nanmean(per_view, axis=1)
    table = pd.DataFrame(per_view, index=pd.Index(conditions, name="condition"), columns=list(views))
    table["mean"] = mean
    return table


def _codes(values: np.ndarray, views: list[str]) -> np.ndarray:
    lookup = {v: i for i, v in enumerate(views)}
    return np.array([lookup.get(v, -1) for v in values], dtype=np.int64)


def _num(x: Any) -> Any:
    return None if x is None or (isinstance(x, float) and np.isnan(x)) else x


def _float(x: Any) -> float:
    return float("nan") if x is None else float(x)


def _table_dict(table: pd.DataFrame) -> dict[str, dict[str, Any]]:
    return {str(c): {str(v): _num(float(x)) for v, x in row.items()} for c, row in table.iterrows()}


def _table_from_dict(data: dict[str, dict[str, Any]]) -> pd.DataFrame:
    table = pd.DataFrame.from_dict(
        {c: {v: _float(x) for v, x in row.items()} for c, row in data.items()}, orient="index"
    )
    table.index.name = "condition"
    return table
