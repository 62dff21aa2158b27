"""Small run-level helpers: seeding, run directory, plain configs, atomic writes."""

from __future__ import annotations

import json
import math
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, ListConfig, OmegaConf


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally make torch kernels deterministic."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False


def run_dir_of(cfg: DictConfig) -> Path:
    """The run's output directory: Hydra's when a Hydra app runs, else ``cfg.paths.output_dir`` (compose API)."""
    if HydraConfig.initialized() and HydraConfig.get().runtime.output_dir:
        return Path(HydraConfig.get().runtime.output_dir)
    return Path(cfg.paths.output_dir)


def plain(cfg: Any) -> Any:
    """A resolved config node as plain Python containers (anything else comes back unchanged)."""
    if isinstance(cfg, (DictConfig, ListConfig)):
        return OmegaConf.to_container(cfg, resolve=True)
    return cfg


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp)`` on a temp file beside ``path``, then rename it into place.

    No reader ever sees a half-written file under the final name, and a failed write leaves nothing behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    """The process umask, read without changing it."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(data: Any, path: str | Path) -> Path:
    """Write JSON atomically (temp file + rename)."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=float) + "\n"))


def markdown_table(table: Any, cell: Callable[[Any], str] | None = None, index: bool = True) -> str:
    """A DataFrame as a GitHub-flavoured Markdown table (no extra dependency: pandas' own needs tabulate).

    ``cell`` formats each value (default: numbers to 4 significant digits, NaN/None as ``-``); ``index``
    writes the index as the first column, headed by its name. Numeric columns are right-aligned.
    """
    import pandas as pd

    cell = cell or _cell
    header = ([str(table.index.name or "")] if index else []) + [str(c) for c in table.columns]
    align = (["---"] if index else []) + [
        "---:" if pd.api.types.is_numeric_dtype(dtype) else "---" for dtype in table.dtypes
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for label, row in table.iterrows():
        values = ([str(label)] if index else []) + [cell(v) for v in row.tolist()]
        lines.append("| " + " | ".join(values) + " |")
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
