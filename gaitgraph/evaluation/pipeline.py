"""Embed a split, score every protocol of its dataset, report the tables: shared by train and evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import ConfigError
from gaitgraph.evaluation.baseline import pose_baseline_features
from gaitgraph.evaluation.embed import embed_poseset, eval_length
from gaitgraph.evaluation.metrics import EvalResult, evaluate
from gaitgraph.evaluation.protocols import AnyProtocol, RetrievalProtocol, load_protocols
from gaitgraph.evaluation.report import print_result, save_results
from gaitgraph.evaluation.retrieval import RetrievalResult, evaluate_retrieval
from gaitgraph.skeletons import Skeleton

Result = EvalResult | RetrievalResult


def protocols_of(dataset_cfg: DictConfig) -> dict[str, AnyProtocol]:
    """The dataset config's protocols, in config order."""
    return load_protocols(OmegaConf.to_container(dataset_cfg.protocols, resolve=True))


def protocols_for(dataset_cfg: DictConfig, split: str = "test") -> dict[str, AnyProtocol]:
    """The protocols as they score the dataset's ``split`` ("val" or "test"): a retrieval protocol may score the
    validation split with other queries (its ``val:``), or not at all."""
    protocols = protocols_of(dataset_cfg)
    chosen = {name: p.for_split(split) for name, p in protocols.items()}
    return {name: p for name, p in chosen.items() if p is not None}


def score(
    embeddings: np.ndarray | torch.Tensor, poses: PoseSet, protocols: dict[str, AnyProtocol], distance: str
) -> dict[str, Result]:
    """Every protocol's result for one set of embeddings (per-view or retrieval, by the protocol's kind)."""
    results = {}
    for name, p in protocols.items():
        scorer = evaluate_retrieval if isinstance(p, RetrievalProtocol) else evaluate
        results[name] = scorer(embeddings, poses.meta, p, distance=distance)
    return results


def evaluate_model(
    model: torch.nn.Module,
    poses: PoseSet,
    dataset_cfg: DictConfig,
    skeleton: Skeleton,
    *,
    tta: bool,
    batch_size: int,
    device: torch.device,
    distance: str = "euclidean",
    split: str = "test",
) -> dict[str, Result]:
    """Embed ``poses`` (the dataset's ``split``, "val" or "test") with ``model`` and score them under every
    protocol of the dataset (see :func:`protocols_for`)."""
    emb = embed_poseset(
        model,
        poses,
        skeleton,
        eval_length(dataset_cfg),
        tta=tta,
        batch_size=batch_size,
        device=device,
    )
    return score(emb, poses, protocols_for(dataset_cfg, split), distance)


def evaluate_baseline(
    poses: PoseSet, dataset_cfg: DictConfig, distance: str = "euclidean", split: str = "test"
) -> dict[str, Result]:
    """The nearest-neighbour baseline on raw normalised poses, same protocols."""
    feats = pose_baseline_features(poses, eval_length(dataset_cfg))
    return score(feats, poses, protocols_for(dataset_cfg, split), distance)


def report(
    results: dict[str, Result],
    out_dir: Path,
    title: str,
    baseline: dict[str, Result] | None = None,
    console: Console | None = None,
    tta: bool | None = None,
) -> dict[str, dict[str, Path]]:
    """Print each protocol's table and write its files (a sub-folder per protocol when several); ``tta`` goes
    into the paper table's caption."""
    for name, result in results.items():
        print_result(result, f"{title} [{name}]", console=console, baseline=(baseline or {}).get(name))
    return save_results(list(results.values()), Path(out_dir), title=title, baselines=baseline, tta=tta)


def selection_metric(results: dict[str, Result], protocol: str | None) -> tuple[str, float]:
    """(protocol name, mean rank-1) of the chosen protocol, the first one by default."""
    name = protocol or next(iter(results))
    if name not in results:
        raise ConfigError("metric_protocol", name, f"null or one of the dataset's protocols: {', '.join(results)}")
    return name, float(results[name].mean_rank1)


def summary(results: dict[str, Result]) -> dict[str, Any]:
    """JSON-ready summary: each protocol's mean rank-1/mAP and per-condition means."""
    return {name: r.to_dict() for name, r in results.items()}
