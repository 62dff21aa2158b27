"""GaitGraph: skeleton-based gait recognition platform (GaitGraph2 rebuilt on Hydra, Optuna and W&B)."""

import importlib.util
import os
from pathlib import Path

# Large CPU tensors on transparent huge pages. Training re-allocates GBs of activations every step and glibc
# hands them back to the kernel, so each step re-faults them; 2 MiB pages cut that fault cost (CASIA-B recipe
# with recomputation: 32.7 -> 41.9 samples/s at the same 4.9 GB peak RSS, scripts/benchmark.py train). libc10 reads
# the variable once when torch is loaded, so it is set here, before anything imports torch; a value the user
# exported (e.g. THP_MEM_ALLOC_ENABLE=0) wins, and spawned DDP workers inherit it.
os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
# OpenMP threads that wait for work sleep instead of spinning: on a machine shared with other jobs (or trials run side
# by side) spinning threads take the cores the working ones need. The OpenMP runtime reads this once, when torch loads
# it, so it is set here too; a value the user exported wins. Measured in benchmarks/threads.py.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from omegaconf import OmegaConf  # noqa: E402

__version__ = "0.2.0"

#: The Hydra configs: ``conf/`` at the repository top, installed as the package ``gaitgraph.conf`` (pyproject's
#: package-dir), so ``pkg://gaitgraph.conf`` finds them in an editable and in a wheel install alike.
CONF_DIR = Path(importlib.util.find_spec("gaitgraph.conf").submodule_search_locations[0])


def project_root() -> Path:
    """Where data/ and outputs/ live: the source checkout when the package runs from one (``pip install -e``),
    else the current directory (a wheel install). ``GAITGRAPH_ROOT`` overrides both (conf/paths/default.yaml)."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()


#: The source checkout (or the current directory for a wheel install), see :func:`project_root`.
ROOT = project_root()

# `${gg.root:}` lets conf/paths resolve data and outputs wherever the command is started from.
OmegaConf.register_new_resolver("gg.root", lambda: str(project_root()), replace=True)


def user_conf_searchpath() -> str:
    """Hydra search-path entry of the user config folder (``$GAITGRAPH_CONFIG_DIR`` or ``~/.config/gaitgraph``),
    where a wheel install keeps its ``local/default.yaml``; the packaged configs again when the folder does not
    exist, since Hydra warns on every start about a missing search-path folder."""
    folder = Path(os.environ.get("GAITGRAPH_CONFIG_DIR") or Path.home() / ".config" / "gaitgraph")
    return f"file://{folder}" if folder.is_dir() else "pkg://gaitgraph.conf"


OmegaConf.register_new_resolver("gg.user_conf", user_conf_searchpath, replace=True)


def dataset_root(data_dir: str, name: str) -> str:
    """``${gg.dataset_root:${paths.data_dir},psymo10}``: ``<data_dir>/<name>`` when that folder exists, else the copy
    that ships with the package (a wheel install carries PsyMo-10 as ``gaitgraph/psymo10``, pyproject's package-dir),
    so the first command works outside a checkout; else ``<data_dir>/<name>`` again, for the reader to name."""
    own = Path(data_dir) / name
    shipped = Path(__file__).resolve().parent / name
    return str(shipped if not own.is_dir() and shipped.is_dir() else own)


OmegaConf.register_new_resolver("gg.dataset_root", dataset_root, replace=True)


def if_sweep(in_sweep: object, otherwise: object, *, _root_: object) -> object:
    """``${gg.if_sweep:A,B}``: A in a sweep (the config holds an ``hparams_search`` node), else B. A recipe without
    validation subjects (a paper's) uses it to hold some out when a sweep must select on validation."""
    return in_sweep if OmegaConf.select(_root_, "hparams_search") is not None else otherwise


OmegaConf.register_new_resolver("gg.if_sweep", if_sweep, replace=True)

# The typed config schemas (trainer/schema, ...) must be in Hydra's ConfigStore before any config is composed.
import gaitgraph.schema  # noqa: E402,F401
