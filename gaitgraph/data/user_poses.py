"""A user's own pose files, read for ``gaitgraph.predict`` through the pose-format registry of the data layer
(:mod:`gaitgraph.data.formats`: the readers the dataset configs name) and preprocessed exactly as a checkpoint's
dataset config preprocesses its data (joint-layout conversion, then normalisation).

``input_format``: ``auto`` (decided from the path by each format's test, in registry order), or a format name of
:data:`gaitgraph.data.formats.FORMATS`: ``psymo``, ``oumvlp``, ``casia_b_pkl``, ``grew``, ``gait3d``,
``casia_b``; or ``<module>:<name>`` for a format the user's own module registers (imported first, as a model
config's ``_target_`` is).
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gaitgraph.data.formats import FORMATS, PoseFormat, detect_format
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.preprocess import convert_layout, normalize
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton


def read_input(inputs: str | Sequence[str], input_format: str, dataset_cfg: DictConfig, skeleton: Skeleton) -> PoseSet:
    """Every sequence of ``inputs`` (paths, in order), preprocessed as ``dataset_cfg`` preprocesses its data."""
    paths = [Path(p).expanduser() for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not paths:
        raise ConfigError("input", inputs, "pose files or folders, e.g. input=data/psymo10 or input=[a.csv,b.csv]")
    input_format = _registered(input_format)
    parts = []
    for path in paths:
        if not path.exists():
            raise ConfigError("input", str(path), "an existing pose file or folder", hint="no such file or folder")
        fmt = FORMATS[detect_format(path) if input_format == "auto" else input_format]
        if fmt.layout != skeleton.file_layout:
            raise ConfigError(
                "input_format",
                fmt.name,
                f"a format with '{skeleton.file_layout}' joints, as the checkpoint was trained on",
                hint=f"{path} holds {fmt.layout} poses; use a checkpoint trained on {fmt.layout} keypoints",
            )
        raw = fmt.open(path, _policy(fmt, dataset_cfg), skeleton).read()
        parts.append(normalize(convert_layout(raw, skeleton), skeleton, dataset_cfg.preprocess.normalize))
    return parts[0] if len(parts) == 1 else PoseSet.concat(parts)


def _registered(input_format: str) -> str:
    """The format name of ``input_format``, importing the module of a ``<module>:<name>`` first."""
    module, _, name = str(input_format).rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(
                "input_format", input_format, "<module>:<format> naming an importable module", hint=str(err)
            ) from err
    if name != "auto" and name not in FORMATS:
        raise ConfigError("input_format", input_format, f"auto, <module>:<format> or one of {sorted(FORMATS)}")
    return name


def _policy(fmt: PoseFormat, dataset_cfg: DictConfig) -> dict[str, Any]:
    """The short-sequence policy of the checkpoint's dataset when it uses the same reader, else the readers'
    defaults: the same sequences are kept as in the dataset the checkpoint is scored on."""
    reader = dataset_cfg.get("reader") or {}
    target = str(reader.get("_target_", ""))
    if target != f"{fmt.reader.__module__}.{fmt.reader.__qualname__}":
        return {}
    return {k: reader[k] for k in ("min_frames", "short_policy") if k in reader}
