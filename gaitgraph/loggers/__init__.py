"""Experiment trackers (``logger`` config group)."""
