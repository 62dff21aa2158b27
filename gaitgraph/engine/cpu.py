"""What the CPU offers a run: native bf16 arithmetic, and how many threads each process of this machine should use.

The OpenMP wait policy (passive: idle threads sleep instead of spinning) is set by ``gaitgraph/process_env.py``, which
every command imports first, since the OpenMP runtime reads it once, when torch is loaded.
"""

from __future__ import annotations

import logging
import os

import torch

log = logging.getLogger(__name__)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX tiles), where bf16 autocast pays.

    torch 2.13 has no public query for it (``torch.backends.cpu.get_cpu_capability()`` stops at "AVX512"); the
    checks in ``torch.cpu`` are private, so a torch without them reads as "no".
    """
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in checks)


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask: a SLURM or taskset limit counts, not the machine's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity query
        return os.cpu_count() or 1


def parallel_trials() -> int:
    """How many jobs of this Hydra multirun run side by side on this machine: the joblib launcher's ``n_jobs``, or
    the sweeper's batch under the submitit local launcher (a process each); 1 for a single run, the basic launcher
    (one trial after the other) and SLURM jobs (each has its own cores, which the affinity mask shows)."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return 1
    hydra = HydraConfig.get()
    target = str(hydra.launcher.get("_target_", ""))
    if "joblib" in target.lower():
        jobs = int(hydra.launcher.get("n_jobs", 1) or 1)
        return usable_cores() if jobs < 0 else max(jobs, 1)
    if target.endswith("LocalLauncher"):
        return max(int(hydra.sweeper.get("n_jobs", 1) or 1), 1)
    return 1


def exported_threads() -> int | None:
    """``OMP_NUM_THREADS`` where the environment exports a positive whole number (a job script, a scheduler, a
    test runner or torchrun sharing the cores out), else None."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    return int(value) if value.isdigit() and int(value) > 0 else None


def thread_count(setting: int | str | None, local_ranks: int = 1) -> int | None:
    """torch's intra-op threads for ``trainer.num_threads``: N as given; ``auto`` = the usable cores shared out
    between the DDP ranks on this machine and the trials running beside this one (at least 1), at most an exported
    ``OMP_NUM_THREADS`` (whoever exported it planned the machine's cores); null = torch's own choice (None: leave
    it)."""
    if setting is None:
        return None
    if setting != "auto":
        return int(setting)
    share = max(1, usable_cores() // (max(local_ranks, 1) * parallel_trials()))
    return min(share, exported_threads() or share)


def apply_threads(setting: int | str | None, local_ranks: int = 1) -> None:
    """Set torch's intra-op threads from ``trainer.num_threads`` (see :func:`thread_count`)."""
    threads = thread_count(setting, local_ranks)
    if threads is not None and threads != torch.get_num_threads():
        torch.set_num_threads(threads)
        log.debug("torch intra-op threads: %d", threads)
