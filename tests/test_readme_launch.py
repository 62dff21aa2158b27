"""README's torchrun line runs as written and its debug configs compose (tests/test_debug.py runs each at its own
budget; see tests/readme_commands.py RUN_BY), beside the other parts of README's commands (tests/test_readme.py,
tests/test_readme_tools.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from .readme_commands import LAUNCH_PART, Workspace, run_as_written


@pytest.mark.slow
def test_readme_launch_and_debug_commands_run_as_written(tmp_path: Path):
    assert run_as_written(Workspace(tmp_path), LAUNCH_PART) >= 1
