"""Precision and compilation benchmark: GaitGraph2's CASIA-B recipe (n21-r8, T=60, SupCon, AdamW + OneCycle,
the full data side) in float32, bf16 autocast (``trainer.amp``) and bf16 under ``torch.compile``
(``trainer.compile``), through the platform's own Trainer (``benchmarks/train.py``'s ``train_steps``).

All variants run in one fresh process, interleaved round by round (fp32, bf16, bf16+compile, fp32, ...), so a
machine whose load changes during the run slows each variant alike: compare the ratios, not the absolute
samples/s. A variant's first step in its first round is its start-up cost (for ``torch.compile`` the compilation);
the later rounds reuse the compiled code, as a long run would. ``python -m benchmarks.precision [out.json] [batch]``.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

from gaitgraph.utils import write_json

#: name -> (trainer.amp, trainer.compile)
VARIANTS = {"fp32": (False, False), "bf16": (True, False), "bf16+compile": (True, True)}
RECIPE = {"batch_size": 128, "sequence_length": 60, "rounds": 3, "steps": 4}


def run(out_json: str | Path | None = None, batch_size: int | None = None, rounds: int | None = None) -> dict:
    """Measure every variant in one fresh subprocess (interleaved); write and return the results."""
    from benchmarks import json_from_subprocess

    recipe = {**RECIPE, "batch_size": batch_size or RECIPE["batch_size"], "rounds": rounds or RECIPE["rounds"]}
    code = f"from benchmarks.precision import measure; measure({recipe!r})"
    out = json_from_subprocess(code)
    if out_json is not None:
        write_json(out, out_json)
    return out


def measure(recipe: dict) -> None:
    """All variants in this process, round by round; prints one JSON line."""
    import torch

    from benchmarks.train import train_steps
    from gaitgraph.engine.cpu import cpu_has_bf16

    steps: dict[str, list[float]] = {name: [] for name in VARIANTS}
    first: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(recipe["rounds"]):
        for name, (amp, compiled) in VARIANTS.items():
            n = 1 + recipe["steps"]
            times = train_steps("cpu", False, recipe["batch_size"], recipe["sequence_length"], n, amp, compiled)
            first[name].append(round(times[0], 2))
            steps[name].extend(times[1:])
    base = statistics.median(steps["fp32"])
    results = {
        name: {
            "samples_per_s": round(recipe["batch_size"] / statistics.median(times), 1),
            "median_step_s": round(statistics.median(times), 3),
            "speedup_vs_fp32": round(base / statistics.median(times), 2),
            "first_step_s_per_round": first[name],
        }
        for name, times in steps.items()
    }
    machine = {"cpu_bf16": cpu_has_bf16(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps({"recipe": {**recipe, "model": "resgcn-n21-r8"}, "machine": machine, "variants": results}))


if __name__ == "__main__":
    args = sys.argv[1:]
    result = run(args[0] if args else None, int(args[1]) if len(args) > 1 else None)
    print(json.dumps(result, indent=2))
