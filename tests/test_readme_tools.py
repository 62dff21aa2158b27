"""The second half of README's commands (evaluation, caches, sweeps, trackers, comparison, prediction) runs as
written (see tests/readme_commands.py), starting from one fresh training run for their ``ckpt_path=...``."""

from __future__ import annotations

from pathlib import Path

import pytest

from .readme_commands import TOOLS_PART, Workspace, prepared, run_as_written


@pytest.mark.slow
def test_readme_tool_commands_run_as_written(tmp_path: Path):
    space = Workspace(tmp_path)
    trained = space.run(prepared("gaitgraph-train"))
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert run_as_written(space, TOOLS_PART) >= 10
