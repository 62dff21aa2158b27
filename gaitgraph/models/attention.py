"""ResGCN v1's six optional main-stream attention layers, unused by GaitGraph2 (docs/original-network.md#attention).

Each layer owns the same submodules as ResGCN v1's ``attentions.py`` (``fcn``, ``part_pool``, ``conv``, ``bn``,
with the same Sequential indices and shapes), so a module's attention state_dict keys read
``main_stream.<i>.att.fcn.1.weight``, ``main_stream.<i>.att.bn.running_mean`` as in the original. Every layer
computes ``relu(bn(x * w(x)) + x)`` on x of shape (N, C, T, V); the kinds differ only in the weights ``w``,
which :meth:`ResidualAttention.weights` returns in a shape that broadcasts against x. Unlike the original (which
``squeeze()``s), every batch size works in eval mode; in training the BatchNorms inside ``fcn`` see one value
per channel and sample, so they need N >= 2, as in the original.
"""

from __future__ import annotations

import torch
from torch import nn

from gaitgraph.errors import ConfigError

#: Kind names accepted by ``model.attention``, and the original model-name prefixes as aliases.
ALIASES = {
    "part": "part",
    "part_share": "part_share",
    "part_conv": "part_conv",
    "channel": "channel",
    "frame": "frame",
    "joint": "joint",
    "pa": "part",
    "psa": "part_share",
    "pca": "part_conv",
    "ca": "channel",
    "fa": "frame",
    "ja": "joint",
}


class ResidualAttention(nn.Module):
    """``relu(bn(x * weights(x)) + x)``; subclasses define ``weights`` and register ``bn`` last, as the original."""

    bn: nn.BatchNorm2d

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        """Attention weights for x (N, C, T, V), broadcastable to x."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(x * self.weights(x)) + x)


class PartAttention(ResidualAttention):
    """``pa``: per-(channel, part) weights from the global average, softmax over parts, each joint takes its part's."""

    def __init__(self, channels: int, parts: list[list[int]], num_joints: int):
        super().__init__()
        self.register_buffer("joint_part", joint_parts(parts, num_joints), persistent=False)
        self.num_parts = len(parts)
        self.fcn = _squeeze_stem(channels, channels // 4, channels * self.num_parts)
        self.bn = nn.BatchNorm2d(channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return _spread_to_joints(self.fcn(x), x.shape[1], self.joint_part)


class _PartPoolAttention(ResidualAttention):
    """Shared core of ``psa`` and ``pca``: pooled part features summed over parts, then ``fcn`` to part weights."""

    #: True: one pooling stem for all parts (``psa``); False: one per part, ``part_pool.<p>`` (``pca``).
    shared: bool

    def __init__(self, channels: int, parts: list[list[int]], num_joints: int):
        super().__init__()
        self.register_buffer("joint_part", joint_parts(parts, num_joints), persistent=False)
        self.register_buffer(
            "part_joints", torch.tensor([j for part in parts for j in part], dtype=torch.long), persistent=False
        )
        self.part_sizes = [len(part) for part in parts]
        self.num_parts = len(parts)
        inner = channels // 4
        self.part_pool = (
            _pool_stem(channels, inner)
            if self.shared
            else nn.ModuleList(_pool_stem(channels, inner) for _ in range(self.num_parts))
        )
        self.fcn = nn.Sequential(
            nn.Conv2d(inner, inner, 1),
            nn.BatchNorm2d(inner),
            nn.ReLU(inplace=True),
            nn.Conv2d(inner, channels * self.num_parts, 1),
        )
        self.bn = nn.BatchNorm2d(channels)

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """Sum over parts of each part's pooled stem output, (N, C//4, 1, 1).

        Each part goes through its stem on its own (not all joints at once): the stem's BatchNorm then takes
        per-part batch statistics and updates its running statistics once per part, as in the original.
        """
        pools = [self.part_pool] * self.num_parts if self.shared else self.part_pool
        per_part = x.index_select(3, self.part_joints).split(self.part_sizes, dim=3)
        return sum(pool(xp) for pool, xp in zip(pools, per_part))

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return _spread_to_joints(self.fcn(self.pooled(x)), x.shape[1], self.joint_part)


class PartShareAttention(_PartPoolAttention):
    """``psa``: one pooling stem shared by all parts."""

    shared = True


class PartConvAttention(_PartPoolAttention):
    """``pca``: one pooling stem per part."""

    shared = False


class ChannelAttention(ResidualAttention):
    """``ca``: per-channel weights from the global average, softmax over channels (they sum to 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.fcn = _squeeze_stem(channels, channels // 4, channels, softmax=True)
        self.bn = nn.BatchNorm2d(channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        return self.fcn(x)  # (N, C, 1, 1)


class FrameAttention(ResidualAttention):
    """``fa``: per-frame weights, a (9, 1) conv over each frame's [mean, max] over (C, V); no normalisation."""

    def __init__(self, channels: int, kernel: int = 9):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, (kernel, 1), padding=((kernel - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        stats = torch.cat([x.mean(dim=(1, 3), keepdim=True), x.amax(dim=(1, 3), keepdim=True)], dim=1)
        return self.conv(stats)  # (N, 1, T, 1)


class JointAttention(ResidualAttention):
    """``ja``: per-joint weights from each joint's mean over (C, T), softmax over joints (they sum to 1)."""

    def __init__(self, channels: int, num_joints: int):
        super().__init__()
        self.fcn = _squeeze_stem(num_joints, num_joints // 2, num_joints, softmax=True)
        self.bn = nn.BatchNorm2d(channels)

    def weights(self, x: torch.Tensor) -> torch.Tensor:
        n, _, _, v = x.shape
        return self.fcn(x.transpose(1, 3)).reshape(n, 1, 1, v)  # joints act as the fcn's channels


def build_attention(kind: str, channels: int, parts: list[list[int]], num_joints: int) -> ResidualAttention:
    """The attention layer ``kind`` (a name or original prefix of ``ALIASES``) for a module with ``channels``."""
    name = ALIASES.get(kind) if isinstance(kind, str) else None
    if name is None:
        raise ConfigError("model.attention", kind, f"null or one of {', '.join(sorted(ALIASES))}")
    if name == "part":
        return PartAttention(channels, parts, num_joints)
    if name == "part_share":
        return PartShareAttention(channels, parts, num_joints)
    if name == "part_conv":
        return PartConvAttention(channels, parts, num_joints)
    if name == "channel":
        return ChannelAttention(channels)
    if name == "frame":
        return FrameAttention(channels)
    return JointAttention(channels, num_joints)


def joint_parts(parts: list[list[int]], num_joints: int) -> torch.Tensor:
    """Index of the first part that contains each joint, (V,); ValueError if a joint is in no part."""
    owner = [-1] * num_joints
    for p, joints in reversed(list(enumerate(parts))):
        for j in joints:
            if not 0 <= j < num_joints:
                raise ConfigError(f"keypoints.parts (part {p})", j, f"joints in 0..{num_joints - 1}")
            owner[j] = p
    missing = [j for j, p in enumerate(owner) if p < 0]
    if missing:
        raise ConfigError("keypoints.parts", missing, "parts that hold every joint: these joints are in none")
    return torch.tensor(owner, dtype=torch.long)


def _squeeze_stem(in_channels: int, inner: int, out_channels: int, softmax: bool = False) -> nn.Sequential:
    """Global average, 1x1 conv to ``inner``, BN, ReLU, 1x1 conv to ``out_channels`` [, softmax over channels].

    The Sequential indices (0 pool, 1 conv, 2 BN, 4 conv) are the original's state_dict names.
    """
    layers = [
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(in_channels, inner, 1),
        nn.BatchNorm2d(inner),
        nn.ReLU(inplace=True),
        nn.Conv2d(inner, out_channels, 1),
    ]
    return nn.Sequential(*layers, nn.Softmax(dim=1)) if softmax else nn.Sequential(*layers)


def _pool_stem(channels: int, inner: int) -> nn.Sequential:
    """1x1 conv, BN, ReLU, then the average over (T, joints of the part)."""
    return nn.Sequential(
        nn.Conv2d(channels, inner, 1), nn.BatchNorm2d(inner), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1)
    )


def _spread_to_joints(logits: torch.Tensor, channels: int, joint_part: torch.Tensor) -> torch.Tensor:
    """(N, C*P, 1, 1) logits -> softmax over the P parts -> (N, C, 1, V), joint v taking part ``joint_part[v]``."""
    n = logits.shape[0]
    part_weights = logits.reshape(n, channels, -1).softmax(dim=2)
    return part_weights.index_select(2, joint_part).unsqueeze(2)
