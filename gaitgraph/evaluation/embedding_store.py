"""Embeddings with their sequence metadata in one HDF5 file (``gaitgraph.predict``'s ``embeddings.h5``).

Layout: ``embeddings`` float32 [S, D], or [S, D, P] for part-based models (GPGait); ``meta/<column>`` one
dataset per metadata column (row i = sequence i; integers as int64, everything else as UTF-8 strings); file
attributes say which model made them (``ckpt_path``, ``config_hash``, ``weights_hash``) so a gallery of another
model is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from gaitgraph.errors import DatasetFormatError
from gaitgraph.utils import atomic_write


def write_embeddings(path: str | Path, embeddings: np.ndarray, meta: pd.DataFrame, attrs: dict[str, Any]) -> Path:
    """Write ``embeddings`` [S, D] or [S, D, P] and ``meta`` (S rows) atomically."""
    if len(embeddings) != len(meta):
        raise ValueError(f"embeddings have {len(embeddings)} rows, meta {len(meta)}")

    def write(tmp: Path) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("embeddings", data=np.asarray(embeddings, dtype=np.float32))
            group = f.create_group("meta")
            for column in meta.columns:
                values = meta[column].to_numpy()
                if pd.api.types.is_integer_dtype(meta[column]):
                    group.create_dataset(column, data=values.astype(np.int64))
                else:
                    group.create_dataset(column, data=values.astype(str).astype(object), dtype=h5py.string_dtype())
            f.attrs["columns"] = list(meta.columns)
            for key, value in attrs.items():
                f.attrs[key] = value

    return atomic_write(path, write)


def read_embeddings(path: str | Path) -> tuple[np.ndarray, pd.DataFrame, dict[str, Any]]:
    """(embeddings [S, D] or [S, D, P], metadata, attributes) of a file :func:`write_embeddings` wrote; a file
    with NaN or infinite embeddings is refused (a DatasetFormatError naming its first such row)."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            embeddings = f["embeddings"][:]
            columns = [str(c) for c in f.attrs["columns"]]
            meta = pd.DataFrame(
                {
                    c: f["meta"][c].asstr()[:] if h5py.check_string_dtype(f["meta"][c].dtype) else f["meta"][c][:]
                    for c in columns
                }
            )
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items() if k != "columns"}
    except (OSError, KeyError) as err:
        raise DatasetFormatError(
            path, "file", "an embeddings.h5 written by gaitgraph.predict", f"{type(err).__name__}: {err}"
        ) from err
    if embeddings.ndim not in (2, 3) or len(embeddings) != len(meta):
        raise DatasetFormatError(
            path, "embeddings", f"[S, D] or [S, D, P] with S = {len(meta)} metadata rows", f"shape {embeddings.shape}"
        )
    bad = np.flatnonzero(~np.isfinite(embeddings).all(axis=tuple(range(1, embeddings.ndim))))
    if len(bad):
        raise DatasetFormatError(
            path,
            f"embeddings row {bad[0]} ({meta.iloc[bad[0]].to_dict()})",
            "finite values",
            f"NaN or infinite values in {len(bad)} of {len(embeddings)} rows",
            hint="the model that wrote it had diverged weights or met degenerate input: embed again with a sound "
            "checkpoint",
        )
    return embeddings, meta, attrs
