"""Memory guard benchmark: the estimate of gaitgraph/engine/budget.py against the measured peak of real steps.

For each configuration (n21-r8 on synthetic CASIA-B poses, batch x frames, each recomputation level, float32 and for
two shapes bf16 autocast) a fresh process builds the data and the model, notes its RSS, estimates the step's peak with
``budget.estimate`` and runs 3 real training steps; the measured peak is the process's peak RSS minus the RSS
before training (what the guard must fit into the free memory). ``python -m benchmarks.memory [out.json]``.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from benchmarks import json_from_subprocess
from gaitgraph.utils import write_json

#: (batch size, frames per window) measured, each plain, partially and fully recomputed, in float32; the
#: BF16_CONFIGS also under bf16 autocast (``trainer.amp``), whose estimate runs under ``budget.AutocastOnMeta``.
CONFIGS = [(128, 30), (256, 30), (128, 60), (384, 60)]
BF16_CONFIGS = [(128, 60), (384, 60)]


def run(out_json: str | Path | None = None) -> dict:
    """Measure every configuration in its own subprocess; write and return the results with their ratios."""
    rows = []
    cases = [(*shape, False) for shape in CONFIGS] + [(*shape, True) for shape in BF16_CONFIGS]
    for batch, frames, amp in cases:
        for recompute in (False, "partial", True):
            code = f"from benchmarks.memory import measure; measure({batch}, {frames}, {recompute!r}, {amp!r})"
            rows.append(
                {
                    "batch_size": batch,
                    "sequence_length": frames,
                    "recompute": recompute,
                    "amp": amp,
                    **json_from_subprocess(code, {"THP_MEM_ALLOC_ENABLE": "1"}),
                }
            )
    ratios = [r["estimate_gb"] / r["measured_gb"] for r in rows if "measured_gb" in r]
    out = {"rows": rows, "estimate_over_measured": {"min": round(min(ratios), 3), "max": round(max(ratios), 3)}}
    if out_json is not None:
        write_json(out, out_json)
    return out


def measure(batch_size: int, sequence_length: int, recompute: bool | str, amp: bool = False) -> None:
    """One configuration in this fresh process (``amp``: bf16 autocast); prints one JSON line."""
    import torch

    from benchmarks.train import synthetic_poses, train_steps
    from gaitgraph.engine.budget import SETTINGS, estimate
    from gaitgraph.engine.host_malloc import configure_malloc
    from gaitgraph.models.resgcn import ResGCN
    from gaitgraph.utils import build

    configure_malloc(64, 2047)  # the platform's trainer.host_malloc defaults, as a run applies them
    synthetic_poses()  # the data's own memory belongs to the baseline, as in a run
    from hydra import compose, initialize_config_module

    with initialize_config_module("gaitgraph.conf", version_base="1.3"):
        skeleton = build(compose("train").keypoints)
    model = ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8, 128)
    predicted = estimate(model, batch_size, sequence_length, torch.bfloat16 if amp else None).peak(SETTINGS[recompute])
    before = _rss()
    train_steps("cpu", recompute, batch_size, sequence_length, 3, amp)
    measured = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    print(
        json.dumps(
            {
                "estimate_gb": round(predicted / 1e9, 3),
                "measured_gb": round(measured / 1e9, 3),
                "baseline_gb": round(before / 1e9, 3),
            }
        )
    )


def _rss() -> int:
    """The process's resident memory now, in bytes."""
    fields = Path("/proc/self/statm").read_text().split()
    import os

    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else None), indent=2))
