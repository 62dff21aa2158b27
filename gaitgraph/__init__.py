"""GaitGraph: skeleton-based gait recognition platform (GaitGraph2 rebuilt on Hydra, Optuna and W&B).

Importing the package changes nothing in the process: the commands set its environment
(:mod:`gaitgraph.process_env`, imported by :mod:`gaitgraph.cli`) and the configs register their resolvers and
schema where they are composed (``conf/__init__.py``, the package ``gaitgraph.conf``).
"""

import importlib.util
from pathlib import Path

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
