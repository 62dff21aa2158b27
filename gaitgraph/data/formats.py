"""Pose formats, declared once: what ``gaitgraph-predict`` reads, and the readers the dataset configs name.

A :class:`PoseFormat` is a name, the joint layout of its files, a test that recognises a file or folder of it
(``input_format=auto``), and how to open such a path as a reader (its ``read()`` gives a PoseSet) for a model's
skeleton (OUMVLP-Pose holds two pose sources and opens the one the skeleton was built on). Its
``reader`` is the class the dataset configs of that format name in ``dataset.reader._target_``; every packaged
dataset config names the reader of a format here (tests/test_registries.py checks), so predict reads every
format the datasets read. The pose pickles (CASIA-B-Pose, GREW, Gait3D) take their reader arguments (folder
layout, subject names) from their packaged dataset config, so those stay written in one place.

A new format: ``register_format(PoseFormat(...))`` in the module of its reader, imported before predict reads
(tests/toys.py registers one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.oumvlp import SOURCES, OumvlpReader
from gaitgraph.data.pkl import PosePklReader
from gaitgraph.data.psymo import PsyMoReader
from gaitgraph.data.readers import PoseReader
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton

#: Reader arguments a path's format opens it with: the short-sequence policy (``min_frames``, ``short_policy``).
Settings = dict[str, Any]


@dataclass(frozen=True)
class PoseFormat:
    """A pose format: ``detect(path)`` says whether a file or folder is one, ``open(path, settings, skeleton)``
    gives the reader of that path (``settings``: :data:`Settings`; ``skeleton``: the model's), ``reader`` is the
    class dataset configs name for it."""

    name: str
    layout: str
    reader: type[PoseReader]
    detect: Callable[[Path], bool]
    open: Callable[[Path, Settings, Skeleton], PoseReader]
    #: What a path of this format looks like, for messages.
    describe: str = ""


#: Format name -> format, in detection order (the first whose ``detect`` accepts a path is its format).
FORMATS: dict[str, PoseFormat] = {}


def register_format(fmt: PoseFormat) -> PoseFormat:
    """Add ``fmt`` to :data:`FORMATS`; a name is taken once (ValueError for another format of that name)."""
    known = FORMATS.setdefault(fmt.name, fmt)
    if known is not fmt:
        raise ValueError(f"pose format '{fmt.name}' is already registered ({known.describe}); pick another name")
    return fmt


def detect_format(path: Path) -> str:
    """The name of the first format that recognises ``path``; ConfigError naming ``input`` when none does."""
    for fmt in FORMATS.values():
        if fmt.detect(path):
            return fmt.name
    described = "; ".join(f"{f.name}: {f.describe}" for f in FORMATS.values())
    raise ConfigError(
        "input",
        str(path),
        f"a pose file or folder in a supported format ({described})",
        hint=f"set input_format to one of {sorted(FORMATS)} to say which; docs/formats.md describes each",
    )


# --- CASIA-B pose CSV, PsyMo JSON, OUMVLP-Pose JSON ----------------------------------------------------------

_PSYMO_WALK = re.compile(r"^\d{3}_\d{2}_\d_\d_[a-z]+\.json$")


def _casia_b_detect(path: Path) -> bool:
    return path.suffix == ".csv" if path.is_file() else path.is_dir() and any(path.glob("*.csv"))


def _casia_b_open(path: Path, settings: Settings, skeleton: Skeleton) -> PoseReader:
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
    return CasiaBReader(path.parent, file=path.name, **settings)


class _PsyMoFiles(PsyMoReader):
    """PsyMo walk files chosen one by one: each ``<ID>/`` folder under their common root is a unit holding only
    the chosen files."""

    def __init__(self, root: Path, files: list[Path], **settings: Any) -> None:
        super().__init__(root, **settings)
        self._files = files

    def units(self) -> list[str]:
        return sorted({f.parent.name for f in self._files})

    def unit_files(self, unit: str) -> list[Path]:
        return [f for f in self._files if f.parent.name == unit]


def _psymo_detect(path: Path) -> bool:
    if path.is_file():
        return bool(_PSYMO_WALK.match(path.name))
    return path.is_dir() and (
        (path / "skeletons").is_dir() or any(_PSYMO_WALK.match(f.name) for f in path.glob("*.json"))
    )


def _psymo_open(path: Path, settings: Settings, skeleton: Skeleton) -> PoseReader:
    if (path / "skeletons").is_dir():
        return PsyMoReader(path, **settings)
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    walks = [f for f in files if _PSYMO_WALK.match(f.name)]
    if not walks:
        raise ConfigError(
            "input",
            str(path),
            "PsyMo walk files <IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json",
            hint="or a PsyMo folder holding skeletons/<ID>/*.json",
        )
    return _PsyMoFiles(walks[0].parent.parent, walks, **settings)


def _oumvlp_detect(path: Path) -> bool:
    return path.is_dir() and any((path / s).is_dir() for s in SOURCES)


def _oumvlp_open(path: Path, settings: Settings, skeleton: Skeleton) -> PoseReader:
    sources = [s for s in SOURCES if (path / s).is_dir()]
    source = skeleton.source if skeleton.source in sources else (sources or SOURCES)[0]
    return OumvlpReader(path, source=source, **settings)


# --- pose pickles (FastPoseGait / OpenGait layout) --------------------------------------------------------------


@cache
def packaged_reader_args(option: str) -> dict[str, Any]:
    """The reader arguments of the packaged dataset config ``conf/dataset/<option>.yaml`` (its folder layout,
    subject naming, split file), without ``_target_``, ``root``, ``workers`` and the short-sequence policy (that
    comes from the checkpoint's dataset, :data:`Settings`)."""
    reader = OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / f"{option}.yaml").reader, resolve=False)
    return {k: v for k, v in reader.items() if k not in ("_target_", "root", "workers", "min_frames", "short_policy")}


def _pickle_format(name: str, describe: str) -> PoseFormat:
    """A pose-pickle format whose folder layout is that of the packaged dataset config ``name``."""

    def detect(path: Path) -> bool:
        first = next(path.glob("*/*/*/*.pkl"), None) if path.is_dir() else None
        if first is None:
            return False
        return re.fullmatch(packaged_reader_args(name)["layout"], first.parent.relative_to(path).as_posix()) is not None

    def open_(path: Path, settings: Settings, skeleton: Skeleton) -> PoseReader:
        args = dict(packaged_reader_args(name))
        if args.get("split_file") and not (path / args["split_file"]).is_file():
            # a user's own sequences need no split; the probe list lives in the split file
            args.update(split_file=None, probe_key=None)
        return PosePklReader(path, **args, **settings)

    return PoseFormat(name, "coco17", PosePklReader, detect, open_, describe)


for _format in (
    PoseFormat(
        "psymo",
        "coco17",
        PsyMoReader,
        _psymo_detect,
        _psymo_open,
        "PsyMo skeletons/<ID>/*.json, an <ID>/ folder of walks or one walk <IDPAD>_<VIEW>_<DIR>_<RUN>_<VAR>.json",
    ),
    PoseFormat(
        "oumvlp",
        "openpose18",
        OumvlpReader,
        _oumvlp_detect,
        _oumvlp_open,
        "OUMVLP-Pose folder of openpose/ or alphapose/ (and ID_list.csv)",
    ),
    _pickle_format("casia_b_pkl", "CASIA-B-Pose pickles <subject>/<type>-<seq>/<view>/*.pkl"),
    _pickle_format("grew", "GREW pickles <id>[train]|probe/<type>/<video>/*.pkl"),
    _pickle_format("gait3d", "Gait3D pickles <id>/camid<c>_videoid<v>/seq<k>/*.pkl"),
    PoseFormat(
        "casia_b",
        "coco17",
        CasiaBReader,
        _casia_b_detect,
        _casia_b_open,
        "a CASIA-B pose CSV or a folder holding one",
    ),
):
    register_format(_format)
