"""GaitGraph's Hydra configs, installed as the package ``gaitgraph.conf``.

Importing it readies composing them: the ``gg.*`` resolvers the configs interpolate and the typed schema in Hydra's
ConfigStore (``trainer/schema``, :mod:`gaitgraph.schema`). Hydra imports it when it reads ``pkg://gaitgraph.conf``
(every command); code that composes from ``gaitgraph.CONF_DIR`` or resolves a run's stored config imports it first
(tests/conftest.py, gaitgraph/sweep/compare.py). ``import gaitgraph`` alone registers nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf

import gaitgraph
from gaitgraph.schema import TrainerSchema


def user_conf_dir() -> Path:
    """The user config folder: ``$GAITGRAPH_CONFIG_DIR``, else ``~/.config/gaitgraph``."""
    return Path(os.environ.get("GAITGRAPH_CONFIG_DIR") or Path.home() / ".config" / "gaitgraph")


def user_conf_searchpath() -> str:
    """Hydra search-path entry of the user config folder (:func:`user_conf_dir`), where a wheel install keeps its
    ``local/default.yaml``; the packaged configs again when the folder does not exist, since Hydra warns on every
    start about a missing search-path folder."""
    folder = user_conf_dir()
    return f"file://{folder}" if folder.is_dir() else "pkg://gaitgraph.conf"


def dataset_root(data_dir: str, name: str) -> str:
    """``${gg.dataset_root:${paths.data_dir},psymo10}``: ``<data_dir>/<name>`` when that folder exists, else the copy
    that ships with the package (a wheel install carries PsyMo-10 as ``gaitgraph/psymo10``, pyproject's package-dir),
    so the first command works outside a checkout; else ``<data_dir>/<name>`` again, for the reader to name."""
    own = Path(data_dir) / name
    shipped = Path(gaitgraph.__file__).resolve().parent / name
    return str(shipped if not own.is_dir() and shipped.is_dir() else own)


def if_sweep(in_sweep: object, otherwise: object, *, _root_: object) -> object:
    """``${gg.if_sweep:A,B}``: A in a sweep (the config holds an ``hparams_search`` node), else B. A recipe without
    validation subjects (a paper's) uses it to hold some out when a sweep must select on validation."""
    return in_sweep if OmegaConf.select(_root_, "hparams_search") is not None else otherwise


#: The resolvers the configs use: ``${gg.root:}`` lets conf/paths resolve data and outputs wherever the command
#: is started from.
RESOLVERS = {
    "gg.root": lambda: str(gaitgraph.project_root()),
    "gg.user_conf": user_conf_searchpath,
    "gg.dataset_root": dataset_root,
    "gg.if_sweep": if_sweep,
}

for _name, _resolver in RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _resolver, replace=True)
# The typed schema every conf/trainer option extends (its defaults list names trainer/schema).
ConfigStore.instance().store(group="trainer", name="schema", node=TrainerSchema)
