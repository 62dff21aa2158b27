"""GPGait (Fu et al., ICCV'23) as FastPoseGait (commit 94da9c8) builds it, on COCO-17 poses.

Three branches of part-aware graph convolutions (PAGCN) read the pose (x, y), bone (x, y) and joint-angle
channels of :func:`~gaitgraph.models.zoo_features.gpgait_input`; the angle branch sees only the 12 non-head joints.
Each branch runs shared layers (masked to the five limbs), then one stream per body partition (masked to it)
plus an unmasked global stream; each stream is max-pooled over time and pooled per part (mean + max over the
part's joints). Parts per branch: 2 + 2 + 3 + 1 = 8 (pose, bone), 2 + 1 = 3 (angle), 19 in all, concatenated
in the order pose, bone, angle (the state_dict holds bone first). A per-part linear head gives the training
embedding [N, 256, 19]; a per-part BNNeck gives the L2-normalised evaluation embedding and cosine logits.

Every PAGCN owns its adjacency offset ``PA``. (The reference builds all ``PA`` of a branch on one shared tensor;
they separate when the model moves to a GPU, as in training, so checkpoints hold distinct values.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.base import AS_STARTED, GaitModel, ModelOutput
from gaitgraph.models.graph import hop_adjacency
from gaitgraph.models.resgcn import conv_bn
from gaitgraph.models.zoo_features import require_layout
from gaitgraph.models.zoo_layers import fastposegait_init, joint_batchnorm
from gaitgraph.skeletons import Skeleton

Partition = tuple[tuple[int, ...], ...]
#: GPGait's COCO-17 partitions: the five limbs (shared layers), and those of the three partition streams.
LIMBS: Partition = ((5, 7, 9), (6, 8, 10), (11, 13, 15), (12, 14, 16), (0, 1, 2, 3, 4))
UPPER_LOWER: Partition = ((5, 7, 9, 6, 8, 10, 0, 1, 2, 3, 4), (11, 13, 15, 12, 14, 16))
ARMS_REST: Partition = ((5, 7, 9, 6, 8, 10), (11, 13, 15, 12, 14, 16, 0, 1, 2, 3, 4))
ARMS_LEGS_HEAD: Partition = ((5, 7, 9, 6, 8, 10), (11, 13, 15, 12, 14, 16), (0, 1, 2, 3, 4))
#: The first non-head COCO-17 joint: the angle branch sees joints HEADLESS_FROM.. renumbered from 0.
HEADLESS_FROM = 5
#: Hop partitions of the graph (FastPoseGait's Graph default max_hop=2) = PAGCN subsets.
MAX_HOP = 2
#: Query/key width of a PAGCN as a fraction of its output channels.
EMBEDDING_DIVISOR = 4
PARTS = 19


def headless(partition: Partition) -> Partition:
    """``partition`` on the non-head joints only, renumbered from 0 (parts left empty are dropped)."""
    kept = (tuple(j - HEADLESS_FROM for j in part if j >= HEADLESS_FROM) for part in partition)
    return tuple(part for part in kept if part)


def part_mask(partition: Partition, num_joints: int) -> torch.Tensor:
    """[V, V] 1 where two joints share a part of ``partition``, else 0."""
    mask = torch.zeros(num_joints, num_joints)
    for part in partition:
        mask[torch.tensor(part)[:, None], torch.tensor(part)[None, :]] = 1.0
    return mask


def part_pooling(x: torch.Tensor, partition: Partition) -> torch.Tensor:
    """(N, C, V) -> (N, C, parts): mean plus max over each part's joints."""
    return torch.stack([x[..., list(p)].mean(-1) + x[..., list(p)].amax(-1) for p in partition], dim=-1)


class PAGCN(nn.Module):
    """Part-aware graph convolution: per hop subset, a data-dependent attention (softmax over the first joint
    axis, logits scaled by 1/(width*T)) plus the graph plus the learnable ``PA``, optionally masked to the parts
    of a partition, aggregates the joints before a 1x1 conv; sum over subsets, BatchNorm, Mish."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int, mask: torch.Tensor | None):
        super().__init__()
        self.PA = nn.Parameter(torch.full((MAX_HOP + 1, num_joints, num_joints), 1e-6))
        width = out_channels // EMBEDDING_DIVISOR
        self.conv_a = nn.ModuleList(nn.Conv2d(in_channels, width, 1) for _ in range(MAX_HOP + 1))
        self.conv_b = nn.ModuleList(nn.Conv2d(in_channels, width, 1) for _ in range(MAX_HOP + 1))
        self.conv_d = nn.ModuleList(nn.Conv2d(in_channels, out_channels, 1) for _ in range(MAX_HOP + 1))
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.Mish()
        self.register_buffer("mask", mask, persistent=False)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        # The per-subset convolutions run as one wider convolution each (the reference's sum over subsets is
        # the conv_d of the subsets' aggregations stacked along channels): the same arithmetic in fewer passes.
        n, c, t, v = x.shape
        subsets = MAX_HOP + 1
        query_key = F.conv2d(x, _stacked(self.conv_a, self.conv_b, dim=0), _stacked_bias(self.conv_a, self.conv_b))
        q, k = query_key.view(n, 2, subsets, -1, t, v).unbind(1)  # each (n, subsets, width, t, v)
        q = q.permute(0, 1, 4, 2, 3).reshape(n, subsets, v, -1)
        k = k.reshape(n, subsets, -1, v)
        adjacency = torch.softmax(q @ k / q.shape[-1], dim=-2) + (A + self.PA)
        if self.mask is not None:
            adjacency = adjacency * self.mask
        aggregated = (x.reshape(n, 1, c * t, v) @ adjacency).view(n, subsets * c, t, v)
        bias = torch.stack([conv.bias for conv in self.conv_d]).sum(0)
        y = F.conv2d(aggregated, _stacked(self.conv_d, dim=1), bias)
        return self.relu(self.bn(y))


def _stacked(*convs: nn.ModuleList, dim: int) -> torch.Tensor:
    """The weights of every conv in ``convs`` concatenated along ``dim`` (0: outputs, 1: inputs)."""
    return torch.cat([conv.weight for group in convs for conv in group], dim=dim)


def _stacked_bias(*convs: nn.ModuleList) -> torch.Tensor:
    return torch.cat([conv.bias for group in convs for conv in group])


class PartAGCNResidual(nn.Module):
    """A PAGCN plus a residual (1x1 conv + BatchNorm when the width changes)."""

    def __init__(self, in_channels: int, out_channels: int, num_joints: int, mask: torch.Tensor | None):
        super().__init__()
        self.asg = PAGCN(in_channels, out_channels, num_joints, mask)
        self.residual_s = conv_bn(in_channels, out_channels) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return self.asg(x, A) + self.residual_s(x)


class BranchPAGCN(nn.Module):
    """One input branch: input BatchNorm, shared layers, partition streams and the global stream -> (N, C, parts).

    ``head``: COCO-17 with the head (streams upper/lower, arms/rest, arms/legs/head, global); else the 12
    non-head joints (streams upper/lower, global) and the ``links`` between them.
    """

    def __init__(self, in_channels: list[int], share_num: int, first_channels: int, links: list[list[int]], head: bool):
        super().__init__()
        num_joints = 17 if head else 17 - HEADLESS_FROM
        adapt = (lambda p: p) if head else headless
        if not head:
            links = [[a - HEADLESS_FROM, b - HEADLESS_FROM] for a, b in links if min(a, b) >= HEADLESS_FROM]
        self.register_buffer("graph", torch.from_numpy(hop_adjacency(num_joints, links, MAX_HOP)), persistent=False)
        self.data_bn = nn.BatchNorm1d(first_channels * num_joints)
        widths = [first_channels, *in_channels[1:]]

        def stage(lo: int, hi: int, partition: Partition | None) -> nn.ModuleList:
            mask = None if partition is None else part_mask(adapt(partition), num_joints)
            return nn.ModuleList(PartAGCNResidual(widths[i], widths[i + 1], num_joints, mask) for i in range(lo, hi))

        depth = len(widths) - 1
        self.layer_share = stage(0, share_num, LIMBS)
        self.backbone = stage(share_num, depth, None)
        self.part_2 = stage(share_num, depth, UPPER_LOWER)
        streams = [("part_2", UPPER_LOWER)]
        if head:
            self.part_2_2 = stage(share_num, depth, ARMS_REST)
            self.part_3_1 = stage(share_num, depth, ARMS_LEGS_HEAD)
            streams += [("part_2_2", ARMS_REST), ("part_3_1", ARMS_LEGS_HEAD)]
        self.streams = [(name, adapt(partition)) for name, partition in streams]
        self.everything = (tuple(range(num_joints)),)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = joint_batchnorm(self.data_bn, x, joint_major=True)
        for layer in self.layer_share:
            x = layer(x, self.graph)
        pooled = [self._stream(getattr(self, name), x, partition) for name, partition in self.streams]
        pooled.append(self._stream(self.backbone, x, self.everything))
        return torch.cat(pooled, dim=-1)

    def _stream(self, layers: nn.ModuleList, x: torch.Tensor, partition: Partition) -> torch.Tensor:
        for layer in layers:
            x = layer(x, self.graph)
        return part_pooling(x.amax(dim=2), partition)


class SeparateFCs(nn.Module):
    """One linear map per part: [N, C, P] -> [N, C', P]."""

    def __init__(self, parts: int, in_channels: int, out_channels: int):
        super().__init__()
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, in_channels, out_channels)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.bmm(x.permute(2, 0, 1), self.fc_bin).permute(1, 2, 0)


class SeparateBNNecks(nn.Module):
    """BNNeck per part: BatchNorm over all (channel, part) features, L2 normalisation over channels, cosine
    logits against per-part normalised class weights. Returns (features [N, C, P], logits [N, classes, P])."""

    def __init__(self, parts: int, in_channels: int, num_classes: int):
        super().__init__()
        self.fc_bin = nn.Parameter(nn.init.xavier_uniform_(torch.zeros(parts, in_channels, num_classes)))
        self.bn1d = nn.BatchNorm1d(in_channels * parts)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature = F.normalize(self.bn1d(x.flatten(1)).view_as(x).permute(2, 0, 1), dim=-1)  # [P, N, C]
        logits = torch.bmm(feature, F.normalize(self.fc_bin, dim=1))
        return feature.permute(1, 2, 0), logits.permute(1, 2, 0)


class GPGait(GaitModel):
    """GPGait: input (N, 5, T, 17) from :func:`~gaitgraph.models.zoo_features.gpgait_input`.

    ``forward``: embedding = the head's part embedding [N, C, 19] (what the triplet loss sees), logits
    [N, num_classes, 19] (cross-entropy). :meth:`embed`: the BNNeck's normalised part features [N, C, 19].
    ``in_channels``: the pose/bone input width (2) then each layer's width; ``share_num`` layers are shared.
    """

    recomputed = (PartAGCNResidual,)
    #: Measured at its recipe against FastPoseGait's step (benchmarks/zoo_reference.py): glibc's own thresholds
    #: are the fastest (huge pages keep the faults cheap) and peak lowest (0.90x the reference's RSS).
    host_malloc = AS_STARTED

    def __init__(
        self, skeleton: Skeleton, in_channels: list[int], num_classes: int, share_num: int = 3, features: str = "gpgait"
    ):
        super().__init__(skeleton, features)
        require_layout(skeleton, ("coco17",), "GPGait")
        widths = [int(c) for c in in_channels]
        if not 1 <= share_num < len(widths) - 1:
            raise ConfigError(
                "model.share_num", share_num, f"1..{len(widths) - 2} (fewer than the {len(widths) - 1} layers)"
            )
        self.bone = BranchPAGCN(widths, share_num, 2, skeleton.links, head=True)
        self.pose = BranchPAGCN(widths, share_num, 2, skeleton.links, head=True)
        self.angle = BranchPAGCN(widths, share_num, 1, skeleton.links, head=False)
        self.head = SeparateFCs(PARTS, widths[-1], widths[-1])
        self.BNNecks = SeparateBNNecks(PARTS, widths[-1], int(num_classes))
        self.num_classes = int(num_classes)  # the engine checks it against the training subjects
        fastposegait_init(self)

    def part_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The head's part embedding [N, C, 19] of the input features (N, 5, T, 17)."""
        if x.dim() != 4 or x.shape[1] != 5 or x.shape[3] != 17:
            raise ValueError(f"GPGait input: expected (N, 5, T, 17), found {tuple(x.shape)}")
        pooled = [self.pose(x[:, 0:2]), self.bone(x[:, 2:4]), self.angle(x[:, 4:5, :, HEADLESS_FROM:])]
        return self.head(torch.cat(pooled, dim=-1))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        embedding = self.part_embedding(x)
        return ModelOutput(embedding, logits=self.BNNecks(embedding)[1])

    def embed(self, poses: torch.Tensor) -> torch.Tensor:
        """The BNNeck's L2-normalised part features [N, C, 19] (FastPoseGait's evaluation embedding)."""
        return self.BNNecks(self.part_embedding(self.input_features(poses)))[0]
