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

__version__ = "0.2.0"

#: The Hydra configs, shipped inside the package (``pkg://gaitgraph.conf``), so a non-editable install finds them.
CONF_DIR = Path(__file__).resolve().parent / "conf"


def project_root() -> Path:
    """Where data/ and outputs/ live: the source checkout when the package runs from one (``pip install -e``),
    else the current directory (a wheel install). ``GAITGRAPH_ROOT`` overrides both (conf/paths/default.yaml)."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


#: The source checkout (or the current directory for a wheel install), see :func:`project_root`.
ROOT = project_root()

# `${gg.root:}` lets conf/paths resolve data and outputs wherever the command is started from.
OmegaConf.register_new_resolver("gg.root", lambda: str(project_root()), replace=True)

# The typed config schemas (trainer/schema, ...) must be in Hydra's ConfigStore before any config is composed.
import gaitgraph.schema  # noqa: E402,F401
