"""The contract every model family keeps; the engine and the evaluation use nothing else of a model.

A model is built on a :class:`~gaitgraph.skeletons.Skeleton` and owns its input pipeline:

- :meth:`GaitModel.input_features` turns a batch of poses ``(N, T, V, 3)`` (x, y, confidence after the
  dataset's preprocessing) into what :meth:`forward` takes (each family its own features, e.g. GaitGraph2's
  joint/velocity/bone branches);
- :meth:`forward` returns a :class:`ModelOutput`;
- :meth:`GaitModel.embed` gives the evaluation embedding of a batch of poses (a family may differ from
  ``forward(input_features(poses)).embedding``, e.g. by averaging with the time-reversed sequence).

Features are kept apart from ``forward`` so that the state_dict and the forward of each network stay exactly
those of its reference implementation (released weights load by name, recorded outputs compare bit for bit).

What the engine needs beyond that, a family declares here instead of the engine naming it:

- ``features``: the name of its input features in the registry :data:`gaitgraph.models.features.FEATURES`
  (``@register_features("<name>")`` where the function is defined);
- :attr:`GaitModel.recomputed`: the block types whose activations may be recomputed in the backward pass
  (``trainer.recompute``); :meth:`GaitModel.recomputed_modules` lists the blocks, and both the
  recomputation (:mod:`gaitgraph.engine.recompute`) and the memory estimate (:mod:`gaitgraph.engine.budget`) use it.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import torch
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.features import FEATURES
from gaitgraph.skeletons import Skeleton


class ModelOutput(NamedTuple):
    """What a model's forward returns.

    embedding: ``[N, D]``, or ``[N, D, P]`` for part-based models (P parts of D channels).
    feature_map: the last feature map ``[N, C, T', V]`` (class-activation pictures), when the family has one.
    logits: classification logits ``[N, classes]``, per part ``[N, classes, P]`` (GPGait's BNNeck), else None.
    """

    embedding: torch.Tensor
    feature_map: torch.Tensor | None = None
    logits: torch.Tensor | None = None


class GaitModel(nn.Module):
    """Base of every model family: the skeleton it was built for, its named input features and the blocks whose
    activations may be recomputed."""

    #: Block types whose activations the engine may recompute in the backward pass. Each block must be a pure
    #: function of its positional arguments (no keyword arguments, no state read from outside besides its own
    #: parameters and buffers; dropout is fine, its random state is replayed), and blocks must not contain one
    #: another. Empty: the family trains plainly only.
    recomputed: ClassVar[tuple[type[nn.Module], ...]] = ()

    def __init__(self, skeleton: Skeleton, features: str) -> None:
        super().__init__()
        if features not in FEATURES:
            raise ConfigError("model.features", features, f"one of {', '.join(sorted(FEATURES))}")
        self.skeleton = skeleton
        self.features = features

    def recomputed_modules(self) -> list[nn.Module]:
        """The blocks of this model whose activations may be recomputed: every submodule of :attr:`recomputed`."""
        return [m for m in self.modules() if isinstance(m, self.recomputed)]

    def input_features(self, poses: torch.Tensor) -> torch.Tensor:
        """``(N, T, V, 3)`` poses -> this model's input (no parameters: safe outside autocast and DDP)."""
        return FEATURES[self.features](poses, self.skeleton)

    def embed(self, poses: torch.Tensor) -> torch.Tensor:
        """The evaluation embedding, [N, D] or part-based [N, D, P], of ``(N, T, V, 3)`` poses as the dataset
        gives them (raw pixels for the CASIA-B and OUMVLP-Pose recipes). Call in eval mode, under
        ``inference_mode``; :func:`gaitgraph.evaluation.embed.embed_poseset` calls it for every model option."""
        return self(self.input_features(poses)).embedding
