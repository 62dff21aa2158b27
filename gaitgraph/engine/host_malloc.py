"""glibc malloc tuning for CPU training (``trainer.host_malloc``).

A CPU training step allocates and frees GBs of activations. glibc serves every block above its mmap threshold
(at most 32 MiB) with a fresh mapping and returns it to the kernel on free, so the next step faults and zeroes
the same memory again (most of a step's time at batch 768, docs/pitfalls.md). Raising the threshold keeps the
mid-sized blocks in the heap for reuse, and a high trim threshold stops glibc from handing the heap's top back
between steps. The largest blocks stay mappings: keeping those too is faster still, but the heap then
fragments and peak RSS doubles (scripts/benchmark.py train measures both).

That trade pays for GaitGraph2, not for every family: each model family declares the policy measured for it
(:attr:`gaitgraph.models.base.GaitModel.host_malloc`), which ``trainer.host_malloc=auto`` applies
(:func:`resolve_host_malloc`); scripts/benchmark.py zoo_reference measures the zoo's against FastPoseGait's code.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from gaitgraph.errors import ConfigError

if TYPE_CHECKING:  # no torch import for the allocator's settings
    from gaitgraph.models.base import GaitModel

log = logging.getLogger(__name__)

#: trainer.host_malloc key -> mallopt parameter number from glibc's <malloc.h>.
MALLOPT_PARAMS = {"mmap_threshold_mb": -3, "trim_threshold_mb": -1}  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
#: The keys of a ``trainer.host_malloc`` mapping; ``auto`` takes the model family's own.
KEYS = ("mmap_threshold_mb", "trim_threshold_mb", "huge_pages")
AUTO = "auto"
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


#: prctl option that stops the kernel from backing this process's memory with transparent huge pages (<linux/prctl.h>).
PR_SET_THP_DISABLE = 41


def configure_host_memory(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """Apply ``trainer.host_malloc`` settings: glibc's thresholds (:func:`configure_malloc`) and, with
    ``huge_pages: false``, no transparent huge pages for this process from now on; returns what was applied.

    Huge pages for large tensors are chosen at process start (``THP_MEM_ALLOC_ENABLE``, gaitgraph/process_env.py:
    torch reads it once); a run can only turn them off (``prctl(PR_SET_THP_DISABLE)``, every later page fault).
    """
    given = dict(settings or {})
    huge_pages = given.pop("huge_pages", None)
    applied: dict[str, Any] = configure_malloc(**given)
    if huge_pages is False:
        libc = _glibc()
        if libc is not None and libc.prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0) == 0:
            applied["huge_pages"] = False
            log.info("transparent huge pages: off for this process")
    return applied


def resolve_host_malloc(setting: Any, family: type[GaitModel]) -> dict[str, Any]:
    """``trainer.host_malloc`` for a run of model class ``family``: ``auto`` -> the family's declared policy
    (:attr:`GaitModel.host_malloc`, measured per family); null -> nothing (glibc's own, huge pages as the process
    started); a mapping of :data:`KEYS` -> those values. Raises :class:`ConfigError` for anything else."""
    if setting is None:
        return {}
    if setting == AUTO:
        return dict(family.host_malloc)
    if not (isinstance(setting, Mapping) and set(setting) <= set(KEYS)):
        raise ConfigError(
            "trainer.host_malloc",
            setting,
            f"'{AUTO}' (the model family's measured policy), null (glibc's own) or a mapping of {', '.join(KEYS)}",
        )
    for name in MALLOPT_PARAMS:
        value = setting.get(name)
        if value is not None and (type(value) is not int or not 0 <= value <= MAX_MB):
            raise ConfigError(f"trainer.host_malloc.{name}", value, f"null or an integer 0..{MAX_MB} (MiB)")
    if type(setting.get("huge_pages", True)) is not bool:
        raise ConfigError(
            "trainer.host_malloc.huge_pages", setting["huge_pages"], "true (as the process started) or false (none)"
        )
    return dict(setting)


def host_memory_policy(trainer_cfg: DictConfig, family: type[GaitModel]) -> dict[str, Any]:
    """:func:`resolve_host_malloc` of a composed ``trainer`` config node's ``host_malloc``."""
    setting = trainer_cfg.host_malloc
    plain = OmegaConf.to_container(setting, resolve=True) if isinstance(setting, DictConfig) else setting
    return resolve_host_malloc(plain, family)
