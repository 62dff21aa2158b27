"""Precision and compilation benchmark: GaitGraph2's CASIA-B recipe (n21-r8, T=60, SupCon, AdamW + OneCycle,
the full data side) in float32 and bf16 autocast (``trainer.amp``), each plain and under ``torch.compile``
(``trainer.compile``), through the platform's own Trainer (``benchmarks/train.py``'s ``train_step_times``).

All variants run in one fresh process, interleaved round by round (fp32, bf16, bf16+compile, fp32, ...), so a
machine whose load changes during the run slows each variant alike: compare the ratios, not the absolute
samples/s. A variant's first step in its first round is its start-up cost (for ``torch.compile`` the compilation);
the later rounds reuse the compiled code, as a long run would. ``python -m benchmarks.precision [out.json] [batch]``;
``python -m benchmarks.precision model_steps [batch] [rounds]`` times the model step alone (:func:`model_steps`).
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

import gaitgraph.process_env  # noqa: F401 - the environment a command runs with, before torch loads

from gaitgraph.utils import write_json

#: name -> (trainer.amp, trainer.compile)
VARIANTS = {"fp32": (False, False), "fp32+compile": (False, True), "bf16": (True, False), "bf16+compile": (True, True)}
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

    from benchmarks.train import train_step_times
    from gaitgraph.engine.cpu import cpu_has_bf16

    steps: dict[str, list[float]] = {name: [] for name in VARIANTS}
    cpu: dict[str, list[float]] = {name: [] for name in VARIANTS}
    first: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(recipe["rounds"]):
        for name, (amp, compiled) in VARIANTS.items():
            n = 1 + recipe["steps"]
            times = train_step_times("cpu", False, recipe["batch_size"], recipe["sequence_length"], n, amp, compiled)
            first[name].append(round(times["wall"][0], 2))
            steps[name].extend(times["wall"][1:])
            cpu[name].extend(times["cpu"][1:])
    base = statistics.median(steps["fp32"])
    results = {
        name: {
            "samples_per_s": round(recipe["batch_size"] / statistics.median(times), 1),
            "median_step_s": round(statistics.median(times), 3),
            "median_step_cpu_s": round(statistics.median(cpu[name]), 3),
            "speedup_vs_fp32": round(base / statistics.median(times), 2),
            "first_step_s_per_round": first[name],
        }
        for name, times in steps.items()
    }
    machine = {"cpu_bf16": cpu_has_bf16(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps({"recipe": {**recipe, "model": "resgcn-n21-r8"}, "machine": machine, "variants": results}))


def model_steps(batch_size: int = 32, rounds: int = 3) -> dict:
    """The model step alone (forward, SupCon in float32, backward, AdamW) on random inputs, fp32 and bf16 autocast
    alternating in this process after one warm-up step each: [wall s, CPU s] per step. Quicker than :func:`run` on a
    loaded machine (no data side, no compilation); the README's bf16 row."""
    import time

    import torch

    from benchmarks.train import resgcn_n21_r8
    from gaitgraph.models.base import ModelOutput
    from gaitgraph.models.losses import SupConLoss

    torch.manual_seed(0)
    model = resgcn_n21_r8()
    optimizer, loss_fn = torch.optim.AdamW(model.parameters(), lr=5e-3), SupConLoss(0.01)
    inputs = model.input_features(torch.randn(batch_size, RECIPE["sequence_length"], 17, 3) * 10 + 100)
    labels = torch.randint(0, 16, (batch_size,))

    def step(bf16: bool) -> list[float]:
        wall, cpu = time.perf_counter(), time.process_time()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            embedding = model(inputs).embedding
        loss = loss_fn(ModelOutput(embedding.float()), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return [round(time.perf_counter() - wall, 2), round(time.process_time() - cpu, 2)]

    step(False), step(True)
    out: dict[str, list] = {"fp32": [], "bf16": []}
    for _ in range(rounds):
        out["fp32"].append(step(False))
        out["bf16"].append(step(True))
    return {"batch_size": batch_size, "wall_and_cpu_s": out}


if __name__ == "__main__":
    args = sys.argv[1:]
    if args and args[0] == "model_steps":  # python -m benchmarks.precision model_steps [batch] [rounds]
        print(json.dumps(model_steps(*(int(a) for a in args[1:]))))
    else:
        result = run(args[0] if args else None, int(args[1]) if len(args) > 1 else None)
        print(json.dumps(result, indent=2))
