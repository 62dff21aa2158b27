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
  (``trainer.recompute=true``), and :attr:`GaitModel.recomputed_partially`: the parts of blocks whose wide,
  cheap activations alone are recomputed (``trainer.recompute=partial``). :meth:`GaitModel.recompute_targets`
  lists them per level, and both the recomputation (:mod:`gaitgraph.engine.recompute`) and the memory estimate
  (:mod:`gaitgraph.engine.budget`) use it.
"""

from __future__ import annotations

from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.features import FEATURES
from gaitgraph.skeletons import Skeleton

#: A host-memory policy (:attr:`GaitModel.host_malloc`) that changes nothing: glibc's own thresholds, huge pages
#: for large tensors as every command starts (gaitgraph/process_env.py).
AS_STARTED: dict[str, Any] = {"mmap_threshold_mb": None, "trim_threshold_mb": None, "huge_pages": True}


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
    #: Module type -> the name of one of its methods whose activations alone are recomputed at the ``partial``
    #: level: a step inside a block that is cheap to run again but keeps wide tensors (ResGCN's bottleneck
    #: expansion, a 1x1 convolution and BatchNorm to 4-8x the channels). The same rules as for the blocks hold.
    #: Empty: the family has no partial level.
    recomputed_partially: ClassVar[dict[type[nn.Module], str]] = {}
    #: The host-memory policy this family trains with on the CPU when ``trainer.host_malloc`` is ``auto``
    #: (:func:`gaitgraph.engine.host_malloc.resolve_host_malloc`): glibc's mmap and trim thresholds in MiB (None:
    #: glibc's own) and ``huge_pages`` (True: as the process started, False: none for the run). A policy pays
    #: for itself per family, measured both ways (speed and peak RSS): the default is GaitGraph2's
    #: (scripts/benchmark.py train), the zoo families declare theirs (benchmarks/zoo_reference.py).
    host_malloc: ClassVar[dict[str, Any]] = {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047, "huge_pages": True}

    def __init__(self, skeleton: Skeleton, features: str) -> None:
        super().__init__()
        if features not in FEATURES:
            raise ConfigError("model.features", features, f"one of {', '.join(sorted(FEATURES))}")
        self.skeleton = skeleton
        self.features = features

    def recompute_targets(self, level: str) -> list[tuple[nn.Module, str]]:
        """(submodule, method name) pairs whose activations are recomputed at ``level``: ``full``, every block of
        :attr:`recomputed` (its ``forward``); ``partial``, the methods :attr:`recomputed_partially` names."""
        if level == "full":
            return [(m, "forward") for m in self.modules() if isinstance(m, self.recomputed)]
        if level == "partial":
            parts = self.recomputed_partially.items()
            return [(m, name) for m in self.modules() for kind, name in parts if isinstance(m, kind)]
        raise ValueError(f"recompute level {level!r}: expected 'full' or 'partial'")

    def input_features(self, poses: torch.Tensor) -> torch.Tensor:
        """``(N, T, V, 3)`` poses -> this model's input (no parameters: safe outside autocast and DDP)."""
        return FEATURES[self.features](poses, self.skeleton)

    def embed(self, poses: torch.Tensor) -> torch.Tensor:
        """The evaluation embedding, [N, D] or part-based [N, D, P], of ``(N, T, V, 3)`` poses as the dataset
        gives them (raw pixels for the CASIA-B and OUMVLP-Pose recipes). Call in eval mode, under
        ``inference_mode``; :func:`gaitgraph.evaluation.embed.embed_poseset` calls it for every model option."""
        return self(self.input_features(poses)).embedding
