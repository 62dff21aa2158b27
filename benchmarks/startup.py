"""Start-up benchmark: how long config-only commands take before they answer, and what they import.

For each command (train's ``--help``, ``--hydra-help``, ``--cfg job``, ``--info defaults``, shell completion of
``model=``; ``--help`` of every other console script in pyproject.toml), the median wall time of ``REPEATS`` fresh
processes, and whether the process imported torch, W&B or matplotlib (from ``python -X importtime``). Target:
under 1.5 s each on the 2-core development machine, no heavy import. ``python -m benchmarks.startup [out.json]``
or ``python scripts/benchmark.py startup``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

from benchmarks import ROOT_DIR

REPEATS = 5
#: Commands whose first argument is an action before the Hydra overrides.
ACTION = {"gaitgraph.data.cache": ["build"]}


def _commands() -> dict[str, list[str]]:
    """name -> arguments after ``python``: train's config-only commands, then ``--help`` of every other script."""
    scripts = tomllib.loads((ROOT_DIR / "pyproject.toml").read_text())["project"]["scripts"]
    modules = [target.split(":")[0] for target in scripts.values()]
    train = ["-m", "gaitgraph.train"]
    return {
        "import gaitgraph": ["-c", "import gaitgraph"],
        "train --help": [*train, "--help"],
        "train --hydra-help": [*train, "--hydra-help"],
        "train --cfg job": [*train, "--cfg", "job"],
        "train --info defaults": [*train, "--info", "defaults"],
        "train completion model=": [*train, "-sc", "query=bash"],
        **{
            f"{module.rsplit('.', 1)[-1]} --help": ["-m", module, *ACTION.get(module, []), "--help"]
            for module in modules
            if module != "gaitgraph.train"
        },
    }


COMMANDS = _commands()
HEAVY = ("torch", "wandb", "matplotlib")


def run(out_json: str | Path | None = None) -> dict:
    """Time every command; write and return the results."""
    from gaitgraph.utils import write_json

    results = {name: _measure(args) for name, args in COMMANDS.items()}
    out = {"repeats": REPEATS, "target_s": 1.5, "commands": results}
    if out_json is not None:
        write_json(out, out_json)
    return out


def _measure(args: list[str]) -> dict:
    env = {**os.environ, "COMP_LINE": "gaitgraph-train model=", "COMP_POINT": "22"}
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=ROOT_DIR, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
    traced = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=ROOT_DIR, capture_output=True, text=True)
    lines = traced.stderr.splitlines()
    imported = {line.rsplit("|", 1)[-1].strip() for line in lines if line.startswith("import time")}
    return {
        "median_s": round(statistics.median(times), 3),
        "runs_s": [round(t, 3) for t in times],
        "exit": done.returncode,
        "imports": {name: name in imported for name in HEAVY},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else None), indent=2))
