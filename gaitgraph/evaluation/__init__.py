"""Evaluation: gallery/probe protocols, rank-1/mAP scoring, reports, the raw-pose baseline.

Importing the package loads none of its modules (the scoring ones load torch): tools that only read results,
such as scripts/compare_runs.py, import :mod:`~gaitgraph.evaluation.tables` without paying for it.
"""
