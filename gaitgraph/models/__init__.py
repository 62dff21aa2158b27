"""Models: ResGCN backbone, skeleton graph, SupCon loss and loading of released weights."""

from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gaitgraph.skeletons import Skeleton
from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.models.compat import load_gaitgraph2_state_dict

#: Keys of a model config that say how to build the model, not constructor arguments.
NON_CONSTRUCTOR_KEYS = ("pretrained",)


def build_model(model_cfg: DictConfig | Mapping, skeleton: Skeleton) -> GaitModel:
    """Instantiate ``model_cfg`` (``_target_`` + arguments) on ``skeleton``; load ``pretrained`` weights if set."""
    plain = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    cfg = OmegaConf.create(plain)
    pretrained = cfg.get("pretrained")
    for key in NON_CONSTRUCTOR_KEYS:
        cfg.pop(key, None)
    # partial: hydra would turn the Skeleton dataclass into a config if passed to instantiate directly
    model = instantiate(cfg, _partial_=True, _convert_="all")(skeleton=skeleton)
    if pretrained:
        load_gaitgraph2_state_dict(model, pretrained)
    return model


__all__ = ["GaitModel", "ModelOutput", "build_model", "load_gaitgraph2_state_dict"]
