"""``gaitgraph.predict`` in process, one composition of conf/predict.yaml per checkpoint: composing costs about as
much as a small predict, and what the calls of a test module vary (input, gallery, distance, top_k, ...) are plain
keys, which an override sets on the composed config as it would on a copy of it."""

from __future__ import annotations

import copy
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf, open_dict

from gaitgraph.predict import predict

from .composed import Composed

#: conf/predict.yaml composed once per set of fixed overrides in this process.
_COMPOSED = Composed("predict")


def run_predict(run_dir: Path, fixed: list[str], *overrides: str) -> dict[str, Path]:
    """``predict()`` with the overrides ``fixed + overrides``, writing into ``run_dir``; the files it wrote by name.

    ``fixed`` (the checkpoint, the device: the same for many calls) is composed once per process; ``overrides``
    set plain keys only (``input=[a,b]``, ``gallery=split:gallery``, ``top_k=4``), parsed by Hydra's own parser."""
    cfg = copy.deepcopy(_COMPOSED(fixed))
    OmegaConf.set_readonly(cfg, False)
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
        for override in OverridesParser.create().parse_overrides(list(overrides)):
            OmegaConf.update(cfg, override.key_or_group, override.value(), merge=True)
    return predict(cfg, [*fixed, *overrides])
