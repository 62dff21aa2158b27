"""Experiment trackers (``logger`` config group)."""

from gaitgraph.loggers.session import tracker_session

__all__ = ["tracker_session"]
