"""A user's own pose files, read for ``gaitgraph.predict`` with the dataset readers and preprocessed exactly as a
checkpoint's dataset config preprocesses its data (joint-layout conversion, then normalisation).

``input_format``: ``auto`` (decided from the path), or one of :data:`FORMATS`. What each format accepts:

- ``casia_b``: a CASIA-B pose CSV (docs/formats.md), or a folder holding exactly one ``*.csv``;
- ``psymo``: a PsyMo folder holding ``skeletons/<ID>/*.json``, one ``<ID>/`` folder of walk files, or one walk
  file ``<IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json`` inside its ``<ID>/`` folder;
- ``oumvlp``: an OUMVLP-Pose folder holding ``openpose/`` or ``alphapose/`` and ``ID_list.csv``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.oumvlp import OumvlpReader
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.preprocess import convert_layout, normalize
from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.data.readers import PoseReader
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton

_PSYMO_WALK = re.compile(r"^\d{3}_\d{2}_\d_\d_[a-z]+\.json$")


class _PsyMoFiles(PsyMoReader):
    """PsyMo walk files chosen one by one: each ``<ID>/`` folder under their common root is a unit holding only
    the chosen files."""

    def __init__(self, root: Path, files: list[Path], **policy: Any) -> None:
        super().__init__(root, **policy)
        self._files = files

    def units(self) -> list[str]:
        return sorted({f.parent.name for f in self._files})

    def unit_files(self, unit: str) -> list[Path]:
        return [f for f in self._files if f.parent.name == unit]


def _casia_b(path: Path, policy: dict[str, Any], skeleton: Skeleton) -> PoseReader:
    if path.is_dir():
        found = sorted(path.glob("*.csv"))
        if len(found) != 1:
            raise ConfigError(
                "input",
                str(path),
                "a CASIA-B pose CSV or a folder holding exactly one *.csv",
                hint=f"found {len(found)} CSV files there",
            )
        path = found[0]
    return CasiaBReader(path.parent, file=path.name, **policy)


def _psymo(path: Path, policy: dict[str, Any], skeleton: Skeleton) -> PoseReader:
    if (path / "skeletons").is_dir():
        return PsyMoReader(path, **policy)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    walks = [f for f in files if _PSYMO_WALK.match(f.name)]
    if not walks:
        raise ConfigError(
            "input",
            str(path),
            "PsyMo walk files <IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json",
            hint="or a PsyMo folder holding skeletons/<ID>/*.json",
        )
    return _PsyMoFiles(walks[0].parent.parent, walks, **policy)


def _oumvlp(path: Path, policy: dict[str, Any], skeleton: Skeleton) -> PoseReader:
    sources = [s for s in ("openpose", "alphapose") if (path / s).is_dir()]
    source = skeleton.source if skeleton.source in sources else (sources[0] if sources else "openpose")
    return OumvlpReader(path, source=source, **policy)


@dataclass(frozen=True)
class InputFormat:
    """A pose format ``predict`` reads: the joint layout of its files and how to build its reader for a path."""

    layout: str
    reader: type[PoseReader]
    build: Callable[[Path, dict[str, Any], Skeleton], PoseReader]


FORMATS: dict[str, InputFormat] = {
    "casia_b": InputFormat("coco17", CasiaBReader, _casia_b),
    "psymo": InputFormat("coco17", PsyMoReader, _psymo),
    "oumvlp": InputFormat("openpose18", OumvlpReader, _oumvlp),
}


def detect_format(path: Path) -> str:
    """The format of ``path`` from its shape (see the module docstring); ConfigError when it is none of them."""
    if path.is_file():
        if path.suffix == ".csv":
            return "casia_b"
        if _PSYMO_WALK.match(path.name):
            return "psymo"
    elif path.is_dir():
        if (path / "skeletons").is_dir() or any(_PSYMO_WALK.match(f.name) for f in path.glob("*.json")):
            return "psymo"
        if (path / "openpose").is_dir() or (path / "alphapose").is_dir():
            return "oumvlp"
        if any(path.glob("*.csv")):
            return "casia_b"
    raise ConfigError(
        "input",
        str(path),
        "a pose file or folder in a supported format (CASIA-B CSV, PsyMo JSON, OUMVLP-Pose)",
        hint=f"set input_format to one of {sorted(FORMATS)} to say which; docs/formats.md describes each",
    )


def read_input(inputs: str | Sequence[str], input_format: str, dataset_cfg: DictConfig, skeleton: Skeleton) -> PoseSet:
    """Every sequence of ``inputs`` (paths, in order), preprocessed as ``dataset_cfg`` preprocesses its data."""
    paths = [Path(p).expanduser() for p in ([inputs] if isinstance(inputs, (str, Path)) else inputs)]
    if not paths:
        raise ConfigError("input", inputs, "pose files or folders, e.g. input=data/psymo10 or input=[a.csv,b.csv]")
    if input_format != "auto" and input_format not in FORMATS:
        raise ConfigError("input_format", input_format, f"auto or one of {sorted(FORMATS)}")
    parts = []
    for path in paths:
        if not path.exists():
            raise ConfigError("input", str(path), "an existing pose file or folder", hint="no such file or folder")
        name = detect_format(path) if input_format == "auto" else input_format
        fmt = FORMATS[name]
        if fmt.layout != skeleton.file_layout:
            raise ConfigError(
                "input_format",
                name,
                f"a format with '{skeleton.file_layout}' joints, as the checkpoint was trained on",
                hint=f"{path} holds {fmt.layout} poses; use a checkpoint trained on {fmt.layout} keypoints",
            )
        raw = fmt.build(path, _policy(fmt, dataset_cfg), skeleton).read()
        parts.append(normalize(convert_layout(raw, skeleton), skeleton, dataset_cfg.preprocess.normalize))
    return parts[0] if len(parts) == 1 else PoseSet.concat(parts)


def _policy(fmt: InputFormat, dataset_cfg: DictConfig) -> dict[str, Any]:
    """The short-sequence policy of the checkpoint's dataset when it uses the same reader, else the readers'
    defaults: the same sequences are kept as in the dataset the checkpoint is scored on."""
    reader = dataset_cfg.get("reader") or {}
    target = str(reader.get("_target_", ""))
    if target.rsplit(".", 1)[-1] != fmt.reader.__name__:
        return {}
    return {k: reader[k] for k in ("min_frames", "short_policy") if k in reader}
