"""Runs sharing a machine: one short training run alone and two at once, with the OpenMP runtime's own wait policy
(threads spin a while before they sleep: what torch did before ``gaitgraph/process_env.py`` set one) and with
``OMP_WAIT_POLICY=PASSIVE`` (the platform's default), each with torch's threads at the usable cores, and two at once
with ``trainer.num_threads=auto`` under a launcher that runs two trials side by side (half the cores each).

Each run is a fresh process: a few steps of GaitGraph2's recipe (n21-r8, T=60, SupCon) at a small batch through
the platform's Trainer (``benchmarks/train.py``'s ``train_steps``); its wall time and its CPU seconds (user + system,
from the kernel's accounting of that child) are recorded. Configurations run interleaved, round by round, so a change
in the machine's load hits each alike: compare ratios. ``python -m benchmarks.threads [out.json] [rounds]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import ROOT_DIR
from gaitgraph.utils import write_json

RECIPE = {"batch_size": 16, "sequence_length": 60, "steps": 4}
#: name -> (OMP_WAIT_POLICY, None = the runtime's default; threads per run, None = torch's default; runs at once)
CONFIGS = {
    "alone_default_policy": (None, None, 1),
    "alone_passive": ("PASSIVE", None, 1),
    "two_at_once_default_policy": (None, None, 2),
    "two_at_once_passive": ("PASSIVE", None, 2),
    "two_at_once_passive_auto_threads": ("PASSIVE", "auto", 2),
}


def _child_code(threads: int | str | None, parallel: int) -> str:
    # torch is imported before gaitgraph, so only the environment given here decides the wait policy; threads are set
    # as train() sets them, with the launcher's side-by-side trials as `parallel`.
    return (
        "import torch, time\n"
        "from gaitgraph.engine import cpu\n"
        f"cpu.parallel_trials = lambda: {parallel}\n"
        f"cpu.apply_threads({threads!r})\n"
        "from benchmarks.train import train_steps\n"
        f"train_steps('cpu', False, {RECIPE['batch_size']}, {RECIPE['sequence_length']}, {RECIPE['steps']})\n"
    )


def _launch(policy: str | None, threads: int | str | None, parallel: int) -> list[dict]:
    """``parallel`` identical runs started together; the wall and CPU seconds of each."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update({"THP_MEM_ALLOC_ENABLE": "1", **({"OMP_WAIT_POLICY": policy} if policy else {})})
    start = time.perf_counter()
    code = _child_code(threads, parallel)
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT_DIR, env=env) for _ in range(parallel)]
    out = []
    for proc in procs:
        _, status, usage = os.wait4(proc.pid, 0)
        out.append(
            {
                "wall_s": round(time.perf_counter() - start, 1),
                "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
                "ok": os.waitstatus_to_exitcode(status) == 0,
            }
        )
        proc.returncode = os.waitstatus_to_exitcode(status)
    return out


def run(out_json: str | Path | None = None, rounds: int = 2) -> dict:
    """Every configuration ``rounds`` times, interleaved; write and return the medians per run."""
    runs: dict[str, list[dict]] = {name: [] for name in CONFIGS}
    for _ in range(rounds):
        for name, (policy, threads, parallel) in CONFIGS.items():
            runs[name].extend(_launch(policy, threads, parallel))
    results = {
        name: {
            "runs_at_once": CONFIGS[name][2],
            "omp_wait_policy": CONFIGS[name][0] or "runtime default",
            "threads": CONFIGS[name][1] or "torch default",
            "median_wall_s": statistics.median(r["wall_s"] for r in rs),
            "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "all_ok": all(r["ok"] for r in rs),
            "runs": rs,
        }
        for name, rs in runs.items()
    }
    recipe = {**RECIPE, "model": "resgcn-n21-r8", "rounds": rounds, "cores": os.cpu_count()}
    out = {"recipe": recipe, "configs": results}
    if out_json is not None:
        write_json(out, out_json)
    return out


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else None, int(args[1]) if len(args) > 1 else 2), indent=2))
