"""Hydra's run mode (one run or a multirun) without composing the config twice.

Before it runs anything, Hydra 1.3 composes the whole config once only to read ``hydra.mode`` (``Hydra.get_mode``),
then composes it again for the run: about a third of a second per command here, and a tenth of a tiny run's CPU
time. The answer is ``None`` (the ``-m`` flag decides) unless something sets ``hydra.mode``. None of the shipped
configs does (tests/test_run_mode.py checks every file), so that composition is skipped unless the command line or a
user's own config could set it: an override naming ``hydra.mode`` or ``hydra.searchpath``, Hydra's ``--config-dir``
/ ``--config-path``, or a ``local/`` config (the checkout's ``conf/local/`` or the user config folder) that mentions
``mode`` at all. Then Hydra composes as it always does.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from hydra._internal.hydra import Hydra

from gaitgraph import CONF_DIR
from gaitgraph.conf import user_conf_dir

#: Override keys through which a command line can set the mode or add configs that may set it.
MODE_KEYS = ("hydra.mode", "hydra.searchpath")
#: Hydra's flags that add a config folder.
CONFIG_FOLDER_FLAGS = ("-cd", "--config-dir", "-cp", "--config-path")


def mode_may_be_configured(overrides: Sequence[str], argv: Sequence[str], local_dirs: Sequence[Path]) -> bool:
    """Whether anything but ``-m`` could set ``hydra.mode``: an override or flag of ``argv``, or a YAML file in one of
    ``local_dirs`` that mentions ``mode``."""
    if any(key in override for override in overrides for key in MODE_KEYS):
        return True
    if any(arg.split("=", 1)[0] in CONFIG_FOLDER_FLAGS for arg in argv):
        return True
    files = (path for folder in local_dirs if folder.is_dir() for path in folder.rglob("*.yaml"))
    return any("mode" in path.read_text(errors="replace") for path in files)


def local_dirs() -> list[Path]:
    """The folders of the users' own ``local`` configs."""
    return [CONF_DIR / "local", user_conf_dir() / "local"]


@contextlib.contextmanager
def from_flags() -> Iterator[None]:
    """Within: Hydra reads the run mode from ``-m`` alone unless :func:`mode_may_be_configured`."""
    composing = Hydra.get_mode

    def get_mode(self: Hydra, config_name: str | None, overrides: list[str]) -> Any:
        if mode_may_be_configured(overrides, sys.argv[1:], local_dirs()):
            return composing(self, config_name, overrides)
        return None

    Hydra.get_mode = get_mode
    try:
        yield
    finally:
        Hydra.get_mode = composing
