"""Models: ResGCN (GaitGraph2), the FastPoseGait zoo (GaitGraph1, GaitTR, GPGait), losses, released weights."""

from __future__ import annotations

from collections.abc import Mapping

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from gaitgraph.errors import ConfigError
from gaitgraph.models import zoo_features  # noqa: F401  (registers the zoo's input features by importing)
from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.models.compat import load_pretrained
from gaitgraph.skeletons import Skeleton

#: Keys of a model config that say how to build the model, not constructor arguments: ``pretrained`` weights,
#: and the ``keypoints`` layout the option is built for (FastPoseGait zoo options; checked against the skeleton).
NON_CONSTRUCTOR_KEYS = ("pretrained", "keypoints")


def build_model(model_cfg: DictConfig | Mapping, skeleton: Skeleton) -> GaitModel:
    """Instantiate ``model_cfg`` (``_target_`` + arguments) on ``skeleton``; load ``pretrained`` weights if set.

    Raises :class:`~gaitgraph.errors.ConfigError` when the config names a ``keypoints`` layout other than the
    skeleton's.
    """
    plain = OmegaConf.to_container(model_cfg, resolve=True) if isinstance(model_cfg, DictConfig) else dict(model_cfg)
    cfg = OmegaConf.create(plain)
    pretrained, layout = cfg.get("pretrained"), cfg.get("keypoints")
    if layout is not None and layout != skeleton.layout:
        raise ConfigError(
            "keypoints",
            skeleton.layout,
            f"layout '{layout}' for this model option",
            hint=f"model.keypoints={layout}: pick a keypoints option of that layout",
        )
    for key in NON_CONSTRUCTOR_KEYS:
        cfg.pop(key, None)
    # partial: hydra would turn the Skeleton dataclass into a config if passed to instantiate directly
    model = instantiate(cfg, _partial_=True, _convert_="all")(skeleton=skeleton)
    if pretrained:
        load_pretrained(model, pretrained)
    return model


__all__ = ["GaitModel", "ModelOutput", "build_model", "load_pretrained"]
