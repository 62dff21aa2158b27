"""Benchmarks of the platform's own steps (each step timed in a fresh process); run them with
``python scripts/benchmark.py``. They live beside the package, not in it: a wheel install carries no benchmark."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

#: The checkout root: benchmark subprocesses start here so that ``import benchmarks`` works in them.
ROOT_DIR = Path(__file__).resolve().parent.parent
#: Address-space cap of a CPU training variant, so a variant that outgrows the machine fails alone instead of
#: waking the OOM killer; recorded as an error.
CPU_AS_LIMIT = 19 << 30


class MissingReference(Exception):
    """A reference implementation's checkout, or what it imports, is not there; the message says how to get it."""


def reference_checkout(
    given: str | Path | None, env_var: str, marker: str, what: str, repository: str, commit: str, needs: str = ""
) -> Path:
    """The checkout of a reference implementation a benchmark imports at run time: ``given``, else ``$env_var``,
    which must hold the file ``marker``. Raises :class:`MissingReference` naming ``what`` runs from it and how to
    get it (clone ``repository`` at ``commit``; ``needs``: what else to install, said with it)."""
    import os

    given = given or os.environ.get(env_var)
    root = Path(given).expanduser().resolve() if given else None
    if root is None or not (root / marker).is_file():
        where = f"{root} holds no {marker}" if root else f"no --ref PATH, no ${env_var}"
        clone = f"/tmp/{repository.rstrip('/').rsplit('/', 1)[-1]}"
        raise MissingReference(
            f"{what}, imported from a checkout of it ({where}). Get it with `git clone {repository} {clone} && "
            f"git -C {clone} checkout {commit}` and pass it as `--ref {clone}` or `{env_var}={clone}`"
            + (f"; it also needs `pip install {needs}`." if needs else ".")
        )
    return root


@contextlib.contextmanager
def exit_if_missing() -> Iterator[None]:
    """Within: a :class:`MissingReference` ends the command with its one paragraph on stderr and exit status 2, without
    a traceback."""
    import sys

    try:
        yield
    except MissingReference as exc:
        print(exc, file=sys.stderr)
        raise SystemExit(2) from None


class StepClock:
    """Wall and CPU seconds (this process, every thread) of each step timed with ``with clock.step(): ...``."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        import time

        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall.append(time.perf_counter() - wall)
        self.cpu.append(time.process_time() - cpu)


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
