"""Activation recomputation: the same maths with a lower peak memory (``trainer.recompute``).

Each target a model family declares at the chosen level (:meth:`gaitgraph.models.base.GaitModel.recompute_targets`:
whole blocks at ``full``, a wide step inside them at ``partial``) keeps only its input for the backward pass and
recomputes its inside there (``torch.utils.checkpoint``, which replays the random state, so dropout draws the same
masks). BatchNorm would update its running statistics a second time during the
recomputation; the recomputation runs with ``momentum=0`` (running = running, bit for bit) and the batch counter
restored, so weights AND BatchNorm buffers equal those of the plain model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from gaitgraph.models.base import GaitModel


@contextlib.contextmanager
def _frozen_batchnorm_stats(module: nn.Module) -> Iterator[None]:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)


class _Recomputed:
    """Replaces a method of a module (an instance attribute shadows it): recomputed while training with gradients,
    plain otherwise."""

    def __init__(self, module: nn.Module, method: str) -> None:
        self.module = module
        self.plain = getattr(module, method)

    def __call__(self, *args: Any) -> Any:
        if not (self.module.training and torch.is_grad_enabled()):
            return self.plain(*args)
        calls = 0

        def run(*inner: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                return self.plain(*inner)
            with _frozen_batchnorm_stats(self.module):
                return self.plain(*inner)

        return checkpoint(run, *args, use_reentrant=False)


def recompute_activations(model: GaitModel, level: str = "full") -> int:
    """Recompute every target ``model`` declares at ``level`` (``full`` or ``partial``, its
    ``recompute_targets(level)``) in the backward pass; returns how many were wrapped (0: it declares none)."""
    wrapped = 0
    for module, method in model.recompute_targets(level):
        if not isinstance(getattr(module, method), _Recomputed):
            setattr(module, method, _Recomputed(module, method))
            wrapped += 1
    return wrapped
