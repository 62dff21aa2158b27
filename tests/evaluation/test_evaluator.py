"""The Evaluator reuses its last result of a split only for the very same weights and poses."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from gaitgraph.evaluation import evaluator as evaluator_module
from gaitgraph.evaluation.evaluator import Evaluator, weights_digest

from ..conftest import skeleton


def test_the_same_weights_on_the_same_split_reuse_the_last_result(monkeypatch: pytest.MonkeyPatch) -> None:
    embedded = []

    def evaluate_model(network, poses, dataset, skeleton, **kwargs):
        embedded.append((kwargs["split"], kwargs["tta"]))
        return {"protocol": object()}

    monkeypatch.setattr(evaluator_module.pipeline, "evaluate_model", evaluate_model)
    cfg = OmegaConf.create({"dataset": {}, "trainer": {"eval_batch_size": 4}, "metric_protocol": None})
    evaluator = Evaluator(cfg, skeleton("coco17"), torch.device("cpu"))
    network = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))  # BatchNorm: a 0-dim buffer in the digest
    val, test = object(), object()

    first = evaluator.results(network, val, False, "val")
    assert evaluator.results(network, val, False, "val") is first and embedded == [("val", False)]
    evaluator.results(network, val, True, "val")  # another variant (TTA)
    evaluator.results(network, test, False, "test")  # another split
    evaluator.results(network, object(), False, "val")  # other poses under the same name
    assert embedded == [("val", False), ("val", True), ("test", False), ("val", False)]
    with torch.no_grad():
        network[1].running_mean += 1e-6  # a buffer changes: other weights
    evaluator.results(network, val, False, "val")
    assert len(embedded) == 5


def test_the_digest_tells_weights_apart() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    assert weights_digest(a) != weights_digest(b)
    b.load_state_dict(a.state_dict())
    assert weights_digest(a) == weights_digest(b)
    assert weights_digest(a.to(torch.bfloat16)) != weights_digest(b)
