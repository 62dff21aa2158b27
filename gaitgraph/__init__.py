"""GaitGraph: skeleton-based gait recognition platform (GaitGraph2 rebuilt on Hydra, Optuna and W&B)."""

from pathlib import Path

from omegaconf import OmegaConf

#: The repository root (the package is installed editable), where conf/, data/ and outputs/ live.
ROOT = Path(__file__).resolve().parent.parent

# `${gg.root:}` lets conf/paths resolve data and outputs wherever the command is started from.
OmegaConf.register_new_resolver("gg.root", lambda: str(ROOT), replace=True)
