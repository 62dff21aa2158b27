"""Every command in README's bash blocks runs as written on the default data (see tests/readme_commands.py);
the training half here, the other half in tests/test_readme_tools.py so the two run side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from .readme_commands import COMMANDS, NOT_RUNS, TOOLS_PART, TRAINING_PART, Workspace, run_as_written, split_comment


def test_the_readme_has_commands_to_check():
    runnable = [c for c in COMMANDS if not split_comment(c)[0].startswith(NOT_RUNS)]
    assert len(runnable) >= 20 and any(c.startswith("gaitgraph-predict") or "gaitgraph.predict" in c for c in runnable)
    assert TRAINING_PART + TOOLS_PART == COMMANDS and len(TRAINING_PART) >= 10 and len(TOOLS_PART) >= 10


@pytest.mark.slow
def test_readme_training_commands_run_as_written(tmp_path: Path):
    assert run_as_written(Workspace(tmp_path), TRAINING_PART) >= 10
