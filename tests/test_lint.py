"""ruff reads every Python file of the project: an exclude pattern that matches too much (``data`` once matched
``gaitgraph/data/`` and ``tests/data/`` as well as the top-level data folder) would let ``make lint`` pass
on files it never read."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gaitgraph import ROOT

LINTED = ("gaitgraph", "hydra_plugins", "tests", "benchmarks", "scripts", "docs")


def _ruff() -> str:
    found = shutil.which("ruff") or str(Path(sys.executable).parent / "ruff")
    if not Path(found).exists():
        pytest.skip("ruff is not installed (the dev extra)")
    return found


def test_ruff_reads_every_python_file():
    shown = subprocess.run(
        [_ruff(), "check", "--show-files", *LINTED], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    read = {Path(line.strip()).resolve() for line in shown.splitlines() if line.strip().endswith(".py")}
    ours = {p.resolve() for top in LINTED for p in (ROOT / top).rglob("*.py")}
    assert ours - read == set(), sorted(str(p.relative_to(ROOT)) for p in ours - read)
    assert (ROOT / "gaitgraph" / "data" / "readers.py").resolve() in read
