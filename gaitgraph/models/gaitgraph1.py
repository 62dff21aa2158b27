"""GaitGraph1 (Teepe et al., ICIP'21) as FastPoseGait (commit 94da9c8) builds it: one ResGCN input branch on the
raw (x, y, confidence) poses, a Bottleneck main stream, an L2-normalised embedding.

The modules are :mod:`gaitgraph.models.resgcn`'s (same parameter names and order inside each module); only the
container names differ: ``ResGCN.head.0`` (input branch, its adjacency ``A`` a buffer), ``ResGCN.backbone.i``
(main stream), ``ResGCN.fcn``. The first main-stream module always halves the sequence length (FastPoseGait's
``get_res``), every later one where the channel count changes. Layouts: COCO-17 (CASIA-B) and OpenPose-18
(FastPoseGait's "alphapose" 18-joint format of OUMVLP-Pose, the same joint order).
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.base import AS_STARTED, GaitModel, ModelOutput
from gaitgraph.models.graph import hop_adjacency
from gaitgraph.models.resgcn import (
    MAX_HOP,
    GlobalAveragePool,
    ResGCNModule,
    SpatialBottleneckBlock,
    TemporalBottleneckBlock,
    normalize_input,
)
from gaitgraph.models.zoo_features import LAYOUTS, require_layout
from gaitgraph.models.zoo_layers import fastposegait_init
from gaitgraph.skeletons import Skeleton


class _InputBranch(nn.Module):
    """BatchNorm over the input channels, a Basic module without residuals, then Bottleneck modules."""

    def __init__(self, channels: list[int], A: torch.Tensor, reduction: int):
        super().__init__()
        self.register_buffer("A", A.clone())
        self.bn = nn.BatchNorm2d(channels[0])
        self.layers = nn.ModuleList(
            ResGCNModule(c_in, c_out, "Basic" if i == 0 else "Bottleneck", A, reduction, initial=i == 0)
            for i, (c_in, c_out) in enumerate(pairwise(channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize_input(self.bn, x)
        for layer in self.layers:
            x = layer(x, self.A)
        return x


class _ResGCN(nn.Module):
    """The network under FastPoseGait's ``ResGCN`` name: input branch, main stream, pooling, linear head."""

    def __init__(
        self, input_branch: list[int], main_stream: list[int], embedding_size: int, A: torch.Tensor, reduction: int
    ):
        super().__init__()
        self.register_buffer("graph", A.clone(), persistent=False)  # not saved: FastPoseGait keeps it unsaved
        self.head = nn.ModuleList([_InputBranch(input_branch, A, reduction)])
        self.backbone = nn.ModuleList(
            ResGCNModule(c_in, c_out, "Bottleneck", A, reduction, stride=2 if i == 0 or c_in != c_out else 1)
            for i, (c_in, c_out) in enumerate(pairwise(main_stream))
        )
        self.global_pooling = GlobalAveragePool()
        self.fcn = nn.Linear(main_stream[-1], embedding_size)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, T, V) -> (embedding (N, E), last feature map (N, C', T', V))."""
        x = self.head[0](x)
        for layer in self.backbone:
            x = layer(x, self.graph)
        return self.fcn(self.global_pooling(x)), x


class GaitGraph1(GaitModel):
    """GaitGraph1: input (N, T, V, 1, 3) from :func:`~gaitgraph.models.zoo_features.gaitgraph1_input`.

    ``forward`` returns the L2-normalised embedding [N, E]; :meth:`embed` the reference's evaluation embedding,
    the mean of the normalised embeddings of the sequence and of its time reversal (not normalised again).
    FastPoseGait trains it on two augmented views of each sequence (SupCon); that pairing is the data side's.
    """

    recomputed = (ResGCNModule,)
    recomputed_partially = {SpatialBottleneckBlock: "expand", TemporalBottleneckBlock: "expand"}
    #: Measured at its recipe against FastPoseGait's step (benchmarks/zoo_reference.py): GaitGraph2's thresholds
    #: keep freed blocks and peak 1.1x the reference's RSS; glibc's own peak at 0.64x and stay faster.
    host_malloc = AS_STARTED

    def __init__(
        self,
        skeleton: Skeleton,
        input_branch: list[int],
        main_stream: list[int],
        embedding_size: int = 128,
        reduction: int = 8,
        features: str = "gaitgraph1",
    ):
        super().__init__(skeleton, features)
        require_layout(skeleton, tuple(LAYOUTS), "GaitGraph1")
        input_branch, main_stream = [int(c) for c in input_branch], [int(c) for c in main_stream]
        if input_branch[0] != 3 or input_branch[-1] != main_stream[0]:
            raise ConfigError(
                "model.input_branch",
                input_branch,
                f"3 input channels (x, y, confidence) first and main_stream[0]={main_stream[0]} last",
            )
        A = torch.from_numpy(hop_adjacency(skeleton.num_joints, skeleton.links, MAX_HOP))
        self.ResGCN = _ResGCN(input_branch, main_stream, int(embedding_size), A, int(reduction))
        fastposegait_init(self)
        for m in self.modules():  # FastPoseGait's zero_init_lastBN: bottlenecks start as their residual path
            if isinstance(m, (SpatialBottleneckBlock, TemporalBottleneckBlock)):
                nn.init.zeros_(m.bn_up.weight)

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.dim() != 5 or x.shape[3:] != (1, 3):
            raise ValueError(f"GaitGraph1 input: expected (N, T, V, 1, 3), found {tuple(x.shape)}")
        embedding, feature_map = self.ResGCN(x[:, :, :, 0].permute(0, 3, 1, 2))
        return ModelOutput(F.normalize(embedding, dim=1), feature_map)

    def embed(self, poses: torch.Tensor) -> torch.Tensor:
        """Mean of the normalised embeddings of ``poses`` and of ``poses`` reversed in time, [N, E]."""
        x = self.input_features(poses)
        both = self(torch.cat([x, x.flip(1)])).embedding
        return both.view(2, len(x), -1).mean(0)
