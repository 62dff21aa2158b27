"""The process environment every command starts with, set when this module is imported, before torch loads.

Only the commands import it (:mod:`gaitgraph.cli`, which every entry point imports, and the entry modules that
import torch themselves, ahead of it: pyproject's isort section ``process-environment`` keeps it first), so
``import gaitgraph`` as a library changes nothing in the caller's process. A value the user exported wins, and
spawned DDP workers inherit the environment (tests/test_process_env.py checks both and the order).
"""

from __future__ import annotations

import os

#: Variables the C libraries under torch read once, when torch loads them; each set only if not exported.
DEFAULTS = {
    # Large CPU tensors on transparent huge pages. Training re-allocates GBs of activations every step and glibc
    # hands them back to the kernel, so each step re-faults them; 2 MiB pages cut that fault cost (CASIA-B recipe
    # with recomputation: 32.7 -> 41.9 samples/s at the same 4.9 GB peak RSS, scripts/benchmark.py train).
    "THP_MEM_ALLOC_ENABLE": "1",
    # OpenMP threads that wait for work sleep instead of spinning: on a machine shared with other jobs (or trials
    # run side by side) spinning threads take the cores the working ones need. Measured in benchmarks/threads.py.
    "OMP_WAIT_POLICY": "PASSIVE",
}


def apply() -> None:
    """Set every variable of :data:`DEFAULTS` the user has not exported."""
    for name, value in DEFAULTS.items():
        os.environ.setdefault(name, value)


apply()
