"""GaitGraph: skeleton-based gait recognition platform (GaitGraph2 rebuilt on Hydra, Optuna and W&B)."""

import os
from pathlib import Path

# Large CPU tensors on transparent huge pages. Training re-allocates GBs of activations every step and glibc
# hands them back to the kernel, so each step re-faults them; 2 MiB pages cut that fault cost (CASIA-B recipe
# with recomputation: 32.7 -> 41.9 samples/s at the same 4.9 GB peak RSS, scripts/benchmark.py train). libc10 reads
# the variable once when torch is loaded, so it is set here, before anything imports torch; a value the user
# exported (e.g. THP_MEM_ALLOC_ENABLE=0) wins, and spawned DDP workers inherit it.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")

from omegaconf import OmegaConf  # noqa: E402

#: The repository root (the package is installed editable), where conf/, data/ and outputs/ live.
ROOT = Path(__file__).resolve().parent.parent

# `${gg.root:}` lets conf/paths resolve data and outputs wherever the command is started from.
OmegaConf.register_new_resolver("gg.root", lambda: str(ROOT), replace=True)
