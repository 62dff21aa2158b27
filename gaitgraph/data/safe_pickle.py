"""Pose pickles loaded so that a crafted file cannot run code.

A pickle names callables that the loader calls; :class:`ArrayUnpickler` resolves only the few a plain
numpy-array pickle needs (array reconstruction, ``ndarray``, ``dtype``), from a fixed table rather than
by importing what the file asks for, and rejects every other name before anything is called.
"""

from __future__ import annotations

import codecs
import pickle
from pathlib import Path
from typing import Any

import numpy as np
from numpy._core import multiarray, numeric

from gaitgraph.errors import DatasetFormatError

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
    ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,  # the name numpy 1.x wrote
    ("numpy._core.numeric", "_frombuffer"): numeric._frombuffer,  # pickle protocol 5
    ("numpy.core.numeric", "_frombuffer"): numeric._frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # protocols 0-2 store the array's bytes as latin-1 text
}
#: dtypes a pose array may have (FastPoseGait's converters write float64 from ``np.genfromtxt``).
POSE_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class ArrayUnpickler(pickle.Unpickler):
    """An unpickler that builds numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"'{module}.{name}' is not allowed in a pose pickle") from None


def load_pose_array(path: Path, num_joints: int) -> np.ndarray:
    """The ``[T, num_joints, 3]`` float32/float64 array pickled in ``path``.

    Anything else (another object, a forbidden callable, a damaged file, another shape or dtype)
    raises :class:`DatasetFormatError` naming the file.
    """
    expected = f"a pickled float32/float64 numpy array [T, {num_joints}, 3]"
    try:
        with open(path, "rb") as f:
            obj = ArrayUnpickler(f).load()
    except OSError:
        raise
    except Exception as e:  # any way a pickle can be malformed: none is more than "not a pose array"
        raise DatasetFormatError(path, "pickle", expected, f"{type(e).__name__}: {e}") from e
    if not isinstance(obj, np.ndarray):
        raise DatasetFormatError(path, "pickle", expected, f"a {type(obj).__name__}")
    if obj.dtype not in POSE_DTYPES:
        raise DatasetFormatError(path, "array dtype", expected, f"dtype {obj.dtype}")
    if obj.ndim != 3 or obj.shape[1:] != (num_joints, 3):
        raise DatasetFormatError(path, "array shape", expected, f"shape {list(obj.shape)}")
    return obj
