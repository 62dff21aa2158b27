"""Scoring a network on a split: embed it and score every protocol of the dataset (training's selection and the
final test evaluation both go through it)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from gaitgraph.data.poseset import PoseSet
from gaitgraph.evaluation import pipeline
from gaitgraph.evaluation.metrics import EvalResult
from gaitgraph.models import GaitModel
from gaitgraph.skeletons import Skeleton


class Evaluator:
    """Embeds a split with a network and scores every protocol of the dataset (no state of its own)."""

    def __init__(self, cfg: DictConfig, skeleton: Skeleton, device: torch.device) -> None:
        self.dataset = cfg.dataset
        self.skeleton = skeleton
        self.device = device
        self.batch_size = cfg.trainer.eval_batch_size
        self.protocol = cfg.metric_protocol

    def results(self, network: GaitModel, poses: PoseSet, tta: bool, split: str) -> dict[str, EvalResult]:
        """Every protocol's result on ``poses``, the dataset's ``split`` ("val" or "test")."""
        return pipeline.evaluate_model(
            network,
            poses,
            self.dataset,
            self.skeleton,
            tta=tta,
            batch_size=self.batch_size,
            device=self.device,
            split=split,
        )

    def score(self, network: GaitModel, poses: PoseSet, split: str) -> float:
        """The selection score: mean rank-1 of ``metric_protocol`` (the dataset's first by default), no TTA."""
        return pipeline.selection_metric(self.results(network, poses, False, split), self.protocol)[1]
