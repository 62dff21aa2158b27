"""The short ``--help`` page of every command: what it does, the config groups a user picks from, examples.

Hydra's own ``--help`` composes the config once per option of every group to list them (several seconds, and a
329-line dump); this page is read from the command's docstring and the file names under ``conf/`` instead, so it
prints at once. Hydra's pages stay behind ``--hydra-help``, ``--cfg job`` and ``--info``. (Ground layer: reads
files, imports nothing of the platform.)
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Sequence
from pathlib import Path

import yaml

HELP_FLAGS = ("--help", "-h")
#: Groups every command shares that are not worth a line on a short page.
QUIET_GROUPS = ("paths", "local", "hydra")


def wants_help(argv: Sequence[str]) -> bool:
    """Whether the command line asks for the short page (Hydra's own flags are left to Hydra)."""
    return any(arg in HELP_FLAGS for arg in argv)


def command_name(module: str) -> str:
    """How the user started the command: ``gaitgraph-train`` (console script) or ``python -m gaitgraph.train``."""
    started = Path(sys.argv[0]).name
    return f"python -m {module}" if started.endswith(".py") or started == "__main__.py" else started


def group_options(conf_dir: Path, config_name: str) -> dict[str, list[str]]:
    """The config groups of ``conf/<config_name>.yaml``'s defaults list, each with the options on disk."""
    root = yaml.safe_load((conf_dir / f"{config_name}.yaml").read_text()) or {}
    groups: dict[str, list[str]] = {}
    for item in root.get("defaults", []):
        if not isinstance(item, dict):
            continue  # _self_
        for key in item:
            group = key.split()[-1].lstrip("/")  # "optional local", "override /dataset"
            if group not in QUIET_GROUPS and (conf_dir / group).is_dir():
                groups[group] = sorted(p.stem for p in (conf_dir / group).glob("*.yaml"))
    return groups


def help_page(conf_dir: Path, config_name: str, module: str, doc: str | None, examples: Sequence[str]) -> str:
    """The page: the docstring's first paragraph, usage, the groups and their options, examples, where to go on."""
    name = command_name(module)
    summary = " ".join((doc or "").strip().split("\n\n")[0].split())
    lines = [textwrap.fill(summary, 100), "", f"usage: {name} [group=option ...] [key=value ...]", ""]
    groups = group_options(conf_dir, config_name)
    if groups:
        lines.append("config groups (pick one option each, e.g. model=gpgait):")
        width = max(map(len, groups)) + 2
        for group, options in groups.items():
            wrapped = textwrap.wrap(" ".join(options), 100 - width - 2) or ["-"]
            lines += [f"  {group:<{width}}{wrapped[0]}"] + [f"  {'':<{width}}{more}" for more in wrapped[1:]]
        lines.append("")
    if examples:
        lines += ["examples:"] + [f"  {name} {example}".rstrip() for example in examples] + [""]
    lines += [
        "more:",
        f"  {name} --cfg job [overrides]   the composed config, without running",
        f"  {name} --info defaults         where each part of the config comes from",
        f"  {name} --hydra-help            Hydra's own flags (multirun -m, completion -sc install=bash)",
        "  README.md and docs/ in the repository explain every group and key",
    ]
    return "\n".join(lines)


def show(page: str) -> None:
    """Print ``page``; a reader that closes the pipe early (``| head``) ends it quietly, not with a traceback."""
    try:
        print(page, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python flushes stdout again at exit
