"""glibc malloc tuning for CPU training (``trainer.host_malloc``).

A CPU training step allocates and frees GBs of activations. glibc serves every block above its mmap threshold
(at most 32 MiB) with a fresh mapping and returns it to the kernel on free, so the next step faults and zeroes
the same memory again (most of a step's time at batch 768, docs/pitfalls.md). Raising the threshold keeps the
mid-sized blocks in the heap for reuse, and a high trim threshold stops glibc from handing the heap's top back
between steps. The largest blocks stay mappings: keeping those too is faster still, but the heap then
fragments and peak RSS doubles (scripts/benchmark.py train measures both).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

from gaitgraph.errors import ConfigError

log = logging.getLogger(__name__)

#: trainer.host_malloc key -> mallopt parameter number from glibc's <malloc.h>.
MALLOPT_PARAMS = {"mmap_threshold_mb": -3, "trim_threshold_mb": -1}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
_MIB = 1 << 20
#: mallopt takes the value in bytes as a C int.
MAX_MB = (2**31 - 1) // _MIB


def configure_malloc(mmap_threshold_mb: int | None = None, trim_threshold_mb: int | None = None) -> dict[str, int]:
    """Set glibc's mmap and trim thresholds (MiB; None leaves glibc's own); returns what was applied.

    A no-op (empty result, logged) where the C library is not glibc. Raises ValueError for a value glibc rejects.
    """
    given = {"mmap_threshold_mb": mmap_threshold_mb, "trim_threshold_mb": trim_threshold_mb}
    wanted = {name: int(value) for name, value in given.items() if value is not None}
    if not wanted:
        return {}
    libc = _glibc()
    if libc is None:
        log.info("trainer.host_malloc: the C library is not glibc; leaving its allocator as it is")
        return {}
    for name, value in wanted.items():
        if not 0 <= value <= MAX_MB:
            raise ConfigError(f"trainer.host_malloc.{name}", value, f"0..{MAX_MB} MiB")
        if libc.mallopt(MALLOPT_PARAMS[name], value * _MIB) != 1:
            raise ConfigError(f"trainer.host_malloc.{name}", value, "a value glibc's mallopt accepts")
    log.info("glibc malloc: %s", ", ".join(f"{k}={v}" for k, v in wanted.items()))
    return wanted


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: not glibc
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc
