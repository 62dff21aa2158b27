"""Benchmarks of the platform's own steps (each step timed in a fresh process); run them with
``python scripts/benchmark.py``. They live beside the package, not in it: a wheel install carries no benchmark."""

from pathlib import Path

#: The checkout root: benchmark subprocesses start here so that ``import benchmarks`` works in them.
ROOT_DIR = Path(__file__).resolve().parent.parent
#: Address-space cap of a CPU training variant, so a variant that outgrows the machine fails alone instead of
#: waking the OOM killer; recorded as an error.
CPU_AS_LIMIT = 19 << 30


def json_from_subprocess(code: str, env: dict[str, str] | None = None) -> dict:
    """Run ``python -c code`` from the checkout root in a fresh process; the JSON object of its last stdout line,
    or ``{"error": ...}`` with its exit status and last stderr line."""
    import json
    import os
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def step_summary(batch_size: int, steps: list[float], device, cpu_steps: list[float] | None = None) -> dict:
    """Training speed of timed steps (seconds each): samples/s at the median step, the steps, this process's
    peak RSS, torch's threads, the median CPU seconds of a step when ``cpu_steps`` are given and, on CUDA, the
    peak allocated GPU memory."""
    import resource
    import statistics

    import torch

    median = statistics.median(steps)
    out = {
        "samples_per_s": round(batch_size / median, 1),
        "median_step_s": round(median, 3),
        "step_s": [round(s, 3) for s in steps],
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "threads": torch.get_num_threads(),
    }
    if cpu_steps:
        out["median_cpu_s"] = round(statistics.median(cpu_steps), 3)
    if torch.device(device).type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return out
