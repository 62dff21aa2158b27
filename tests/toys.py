"""A toy model family declared outside the package, as a user's own would be: its input features registered by name,
its recomputable blocks declared on the class. tests/test_registries.py trains it through the real entry point."""

from __future__ import annotations

import torch
from torch import nn

from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.models.features import register_features
from gaitgraph.skeletons import Skeleton


@register_features("toy_xy")
def toy_xy(poses: torch.Tensor, skeleton: Skeleton) -> torch.Tensor:
    """(N, T, V, 3) -> (N, 2V, T): the joints' x and y as channels over time."""
    return poses[..., :2].flatten(2).transpose(1, 2)


class ToyBlock(nn.Module):
    """A temporal convolution, BatchNorm, ReLU and dropout; counts its training forwards (a recomputed block runs
    twice per step)."""

    calls = 0

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.bn = nn.BatchNorm1d(channels)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and not x.is_meta:  # not the memory estimate's pass
            ToyBlock.calls += 1
        return self.dropout(self.bn(self.conv(x)).relu()) + x


class ToyGait(GaitModel):
    """Blocks of :class:`ToyBlock` on the joints' coordinates, mean over time, a linear embedding [N, E]."""

    recomputed = (ToyBlock,)

    def __init__(self, skeleton: Skeleton, width: int = 16, blocks: int = 3, embedding_size: int = 8) -> None:
        super().__init__(skeleton, "toy_xy")
        self.stem = nn.Conv1d(2 * skeleton.num_joints, width, 1)
        self.blocks = nn.Sequential(*(ToyBlock(width) for _ in range(blocks)))
        self.fcn = nn.Linear(width, embedding_size)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        y = self.blocks(self.stem(x))
        return ModelOutput(self.fcn(y.mean(dim=2)))
