"""Optional attention layers of ResGCN v1 main-stream modules (reference §2.5; unused by GaitGraph2)."""

from __future__ import annotations

import torch
from torch import nn


class PartAttention(nn.Module):
    """Per-(channel, body part) weights, softmax over parts, each joint taking its part's weight."""

    def __init__(self, channels: int, parts: list[list[int]], num_joints: int, reduction: int = 4):
        super().__init__()
        owner = [-1] * num_joints
        for p, joints in enumerate(parts):
            for j in joints:
                owner[j] = p
        if -1 in owner:
            missing = [j for j, p in enumerate(owner) if p < 0]
            raise ValueError(f"part attention: joints {missing} belong to no part of the skeleton")
        self.num_parts = len(parts)
        self.register_buffer("joint_part", torch.tensor(owner, dtype=torch.long), persistent=False)
        self.fcn = nn.Sequential(*_squeeze(channels, reduction, channels * self.num_parts))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        weights = self.fcn(x).view(n, c, 1, self.num_parts).softmax(dim=3)
        return weights.index_select(3, self.joint_part)  # (N, C, 1, V), broadcasts over time


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation over channels."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.fcn = nn.Sequential(*_squeeze(channels, reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fcn(x)


class AttentionLayer(nn.Module):
    """``relu(BN(x * att(x)) + x)`` around one attention kind."""

    def __init__(self, att: nn.Module, channels: int):
        super().__init__()
        self.att = att
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(x * self.att(x)) + x)


ATTENTIONS = ("part", "channel")


def build_attention(kind: str, channels: int, parts: list[list[int]], num_joints: int) -> AttentionLayer:
    """An attention layer of ``kind`` (one of ``ATTENTIONS``) for a module with ``channels`` outputs."""
    if kind == "part":
        return AttentionLayer(PartAttention(channels, parts, num_joints), channels)
    if kind == "channel":
        return AttentionLayer(ChannelAttention(channels), channels)
    raise ValueError(f"model.attention: expected one of {ATTENTIONS} or null, found {kind!r}")


def _squeeze(channels: int, reduction: int, out_channels: int) -> list[nn.Module]:
    """The attention stem: global pool, 1x1 bottleneck with BN and ReLU, 1x1 to ``out_channels``."""
    inner = max(channels // reduction, 1)
    return [
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(channels, inner, 1),
        nn.BatchNorm2d(inner),
        nn.ReLU(inplace=True),
        nn.Conv2d(inner, out_channels, 1),
    ]
