"""GaitTR (Zhang et al., spatial transformer for skeleton gait) as FastPoseGait (commit 94da9c8) builds it.

Blocks of a temporal convolution and a per-frame multi-head self-attention over the joints, each with residuals;
mean over joints and frames, then a 1x1 convolution to the embedding. The skeleton graph is never used (the
reference builds an adjacency and ignores it), so joints are related only through attention. The input is the
10 channels of :func:`~gaitgraph.models.zoo_features.gaittr_input` on raw pixel coordinates: the input BatchNorm
carries their scale, and with identity statistics (an untrained network) activations reach 1e3 and beyond, where
float32 and float64 already disagree visibly.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.base import AS_STARTED, GaitModel, ModelOutput
from gaitgraph.models.resgcn import conv_bn
from gaitgraph.models.zoo_features import LAYOUTS, require_layout
from gaitgraph.models.zoo_layers import fastposegait_init, joint_batchnorm
from gaitgraph.skeletons import Skeleton

#: Attention heads and the query/key width as a fraction of the output channels (FastPoseGait's defaults).
HEADS = 8
KEY_FRACTION = 0.25
#: Block widths must split into HEADS query/key and value slices.
WIDTH_STEP = int(HEADS / KEY_FRACTION)


class TemporalConv(nn.Module):
    """FastPoseGait's UnitConv2D: dropout, (k, 1) convolution, Mish, BatchNorm (in that order)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 9, dropout: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, (kernel_size, 1), padding=((kernel_size - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.Mish()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.relu(self.conv(self.dropout(x))))


class SpatialAttention(nn.Module):
    """Multi-head self-attention over the joints of each frame: one 1x1 conv to q, k, v, one 1x1 conv out."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.dk, self.dv = int(KEY_FRACTION * out_channels), out_channels
        if self.dk % HEADS or self.dv % HEADS:
            raise ConfigError("model.in_channels", out_channels, f"block widths that are multiples of {WIDTH_STEP}")
        self.qkv_conv = nn.Conv2d(in_channels, 2 * self.dk + self.dv, 1)
        self.attn_out = nn.Conv2d(self.dv, self.dv, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, 1, V) -> (B, out, 1, V)."""
        b, _, _, v = x.shape
        q, k, val = self.qkv_conv(x).flatten(2).split([self.dk, self.dk, self.dv], dim=1)
        heads = [t.reshape(b, HEADS, -1, v).transpose(2, 3) for t in (q, k, val)]  # (B, heads, V, width)
        out = F.scaled_dot_product_attention(*heads, scale=(self.dk // HEADS) ** -0.5)
        return self.attn_out(out.transpose(2, 3).reshape(b, self.dv, 1, v))


class SpatialTransformer(nn.Module):
    """FastPoseGait's STModule: per-(channel, joint) BatchNorm, attention frame by frame, Mish, BatchNorm."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int):
        super().__init__()
        self.relu = nn.Mish()
        self.bn = nn.BatchNorm2d(out_channels)
        self.data_bn = nn.BatchNorm1d(in_channels * num_joints)
        self.attention_conv = SpatialAttention(in_channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        x = joint_batchnorm(self.data_bn, x, joint_major=False)
        y = self.attention_conv(x.permute(0, 2, 1, 3).reshape(n * t, c, 1, v))
        return self.bn(self.relu(y.view(n, t, -1, v).permute(0, 2, 1, 3)))


class TCNST(nn.Module):
    """One GaitTR block: x0 = tcn(x) + x; y = st(x0) + res(x0) + down(x) (identities when widths agree)."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int):
        super().__init__()
        self.tcn = TemporalConv(in_channels, in_channels)
        self.st = SpatialTransformer(in_channels, out_channels, num_joints)
        widen = in_channels != out_channels
        self.residual_s = conv_bn(in_channels, out_channels) if widen else nn.Identity()
        self.down = TemporalConv(in_channels, out_channels, kernel_size=1, dropout=0.0) if widen else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x0 = self.tcn(x) + x
        return self.st(x0) + self.residual_s(x0) + self.down(x)


class GaitTR(GaitModel):
    """GaitTR: input (N, C, T, V) from :func:`~gaitgraph.models.zoo_features.gaittr_input`; embedding [N, E].

    ``in_channels``: the input channels (10) then each block's width, e.g. [10, 64, 64, 128, 256].
    """

    recomputed = (TCNST,)
    #: Measured at its recipe against FastPoseGait's step (benchmarks/zoo_reference.py): GaitGraph2's thresholds
    #: peak at 1.37x the reference's RSS at no gain in speed; glibc's own peak at 0.85x.
    host_malloc = AS_STARTED

    def __init__(self, skeleton: Skeleton, in_channels: list[int], embedding_size: int = 128, features: str = "gaittr"):
        super().__init__(skeleton, features)
        require_layout(skeleton, tuple(LAYOUTS), "GaitTR")
        widths = [int(c) for c in in_channels]
        v = skeleton.num_joints
        self.data_bn = nn.BatchNorm1d(widths[0] * v)
        self.backbone = nn.ModuleList(TCNST(c_in, c_out, v) for c_in, c_out in pairwise(widths))
        self.fcn = nn.Conv1d(widths[-1], int(embedding_size), kernel_size=1)
        fastposegait_init(self)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.dim() != 4 or x.shape[1] != self.data_bn.num_features // self.skeleton.num_joints:
            raise ValueError(
                f"GaitTR input: expected (N, C, T, V) with C*V = {self.data_bn.num_features}, found {tuple(x.shape)}"
            )
        x = joint_batchnorm(self.data_bn, x, joint_major=True)
        for block in self.backbone:
            x = block(x)
        embedding = self.fcn(x.mean(dim=3).mean(dim=2, keepdim=True)).squeeze(2)
        return ModelOutput(embedding, x)
