"""Every command in README's bash blocks runs as written on the default data (see tests/readme_commands.py);
the training part here, torchrun and the debug configs in tests/test_readme_launch.py, the tools in
tests/test_readme_tools.py, so the three run side by side."""

from __future__ import annotations

from pathlib import Path

import pytest

from .readme_commands import (
    COMMANDS,
    LAUNCH_PART,
    NOT_RUNS,
    RUN_BY,
    TOOLS_PART,
    TRAINING_PART,
    Workspace,
    run_as_written,
    split_comment,
)


def test_the_readme_has_commands_to_check():
    runnable = [c for c in COMMANDS if not split_comment(c)[0].startswith(NOT_RUNS)]
    assert len(runnable) >= 20 and any(c.startswith("gaitgraph-predict") or "gaitgraph.predict" in c for c in runnable)
    assert TRAINING_PART + LAUNCH_PART + TOOLS_PART == COMMANDS
    assert len(TRAINING_PART) >= 8 and len(LAUNCH_PART) >= 4 and len(TOOLS_PART) >= 10


def test_the_commands_run_elsewhere_are_readmes_and_their_tests_exist():
    """Each command the README tests only compose is README's, and the test named for it exists and runs it."""
    from gaitgraph import ROOT

    commands = {split_comment(line)[0] for line in COMMANDS}
    for command, node in RUN_BY.items():
        assert command in commands, f"{command!r} is no longer in README"
        path, name = node.split("::")
        assert f"def {name}(" in (ROOT / path).read_text(), f"{node} does not exist"


@pytest.mark.slow
def test_readme_training_commands_run_as_written(tmp_path: Path):
    assert run_as_written(Workspace(tmp_path), TRAINING_PART) >= 6
