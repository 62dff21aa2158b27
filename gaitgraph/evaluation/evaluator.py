"""Scoring a network on a split: embed it and score every protocol of the dataset (training's selection and the
final test evaluation both go through it)."""

from __future__ import annotations

import hashlib

import torch
from omegaconf import DictConfig

from gaitgraph.data.poseset import PoseSet
from gaitgraph.evaluation import pipeline
from gaitgraph.evaluation.metrics import EvalResult
from gaitgraph.models import GaitModel
from gaitgraph.skeletons import Skeleton


def weights_digest(network: torch.nn.Module) -> str:
    """A digest of every parameter and buffer of ``network`` (names, shapes, dtypes, values): equal digests, equal
    weights, so equal embeddings."""
    digest = hashlib.blake2b(digest_size=16)
    for name, tensor in network.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype};".encode())
        digest.update(tensor.detach().cpu().reshape(-1).contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


class Evaluator:
    """Embeds a split with a network and scores every protocol of the dataset.

    It remembers the last result of each split: the end of a run scores ``best.pt`` on the validation split, whose
    weights selection has usually just scored; the same weights (by :func:`weights_digest`) reuse that result
    instead of embedding the split again.
    """

    def __init__(self, cfg: DictConfig, skeleton: Skeleton, device: torch.device) -> None:
        self.dataset = cfg.dataset
        self.skeleton = skeleton
        self.device = device
        self.batch_size = cfg.trainer.eval_batch_size
        self.protocol = cfg.metric_protocol
        self._last: dict[tuple[str, bool], tuple[PoseSet, str, dict[str, EvalResult]]] = {}

    def results(self, network: GaitModel, poses: PoseSet, tta: bool, split: str) -> dict[str, EvalResult]:
        """Every protocol's result on ``poses``, the dataset's ``split`` ("val" or "test")."""
        digest = weights_digest(network)
        last = self._last.get((split, tta))
        if last is not None and last[0] is poses and last[1] == digest:
            return last[2]
        found = pipeline.evaluate_model(
            network,
            poses,
            self.dataset,
            self.skeleton,
            tta=tta,
            batch_size=self.batch_size,
            device=self.device,
            split=split,
        )
        self._last[(split, tta)] = (poses, digest, found)
        return found

    def score(self, network: GaitModel, poses: PoseSet, split: str) -> float:
        """The selection score: mean rank-1 of ``metric_protocol`` (the dataset's first by default), no TTA."""
        return pipeline.selection_metric(self.results(network, poses, False, split), self.protocol)[1]
