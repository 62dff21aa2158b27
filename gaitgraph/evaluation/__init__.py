"""Evaluation: gallery/probe protocols, rank-1/mAP scoring, reports, the raw-pose baseline."""

from gaitgraph.evaluation.metrics import EvalResult, evaluate
from gaitgraph.evaluation.protocols import Protocol, load_protocols

__all__ = ["EvalResult", "Protocol", "evaluate", "load_protocols"]
