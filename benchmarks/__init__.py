"""Benchmarks of the platform's own steps (each step timed in a fresh process); run them with
``python scripts/benchmark.py``. They live beside the package, not in it: a wheel install carries no benchmark."""

from pathlib import Path

#: The checkout root: benchmark subprocesses start here so that ``import benchmarks`` works in them.
ROOT_DIR = Path(__file__).resolve().parent.parent
