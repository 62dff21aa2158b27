"""ResGCN v1 as GaitGraph2 uses it (docs/original-network.md#resgcn-structure).

Module and parameter names equal the original ``state_dict`` (docs/original-network.md#state-dict-layout), so released
weights load by name. Tensors inside the network are (N, C, T, V) in channels_last memory format (physically
(N, T, V, C)): the CPU (9, 1) temporal convolutions run about 1.5x faster on it, and the graph aggregation over
joints is one batched matmul on that layout without copies. ReLU and residual adds work in place on fresh
BatchNorm outputs, which autograd does not keep.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from gaitgraph.errors import ConfigError
from gaitgraph.models.attention import build_attention
from gaitgraph.models.base import GaitModel, ModelOutput
from gaitgraph.models.graph import hop_adjacency
from gaitgraph.skeletons import Skeleton

#: Spatial kernel: hop partitions 0..MAX_GRAPH_DISTANCE of A are used (A holds one more, hop 3).
MAX_GRAPH_DISTANCE = 2
MAX_HOP = 3
BLOCKS = ("Basic", "Bottleneck")


def conv_bn(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """1x1 convolution (temporal ``stride``) then BatchNorm: the projection residual of every zoo family."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, (stride, 1)), nn.BatchNorm2d(out_channels))


class SpatialGraphConv(nn.Module):
    """1x1 conv to K x out channels (K-major), then sum_k over x_k @ A_k along joints.

    ``out_shift`` (a per-channel constant added after the aggregation) is None except in the copy made by
    :meth:`ResGCN.fused_for_inference`, where it carries the shift of the folded BatchNorm.
    """

    def __init__(self, in_channels: int, out_channels: int, max_graph_distance: int = MAX_GRAPH_DISTANCE):
        super().__init__()
        self.partitions = max_graph_distance + 1
        self.gcn = nn.Conv2d(in_channels, out_channels * self.partitions, 1)
        self.register_buffer("out_shift", None)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        k = self.partitions
        if self.gcn.in_channels < self.gcn.out_channels // k:
            y = self._aggregate_first(x, A[:k])
        else:
            y = _aggregate(self.gcn(x), A[:k].permute(2, 1, 0).reshape(A.shape[-1], -1))
        return y if self.out_shift is None else y.add_(self.out_shift.view(1, -1, 1, 1))

    def _aggregate_first(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        """Same map with the graph applied before the conv: cheaper when few input channels (input layers).

        sum_k (W_k x + b_k) A_k = [W_0 .. W_K-1] [x A_0; ..; x A_K-1] + sum_k b_k colsum(A_k).
        """
        k = A.shape[0]
        c_in = x.shape[1]
        c_out = self.gcn.out_channels // k
        xa = _aggregate(x, A.permute(2, 0, 1).reshape(-1, A.shape[1]))  # channel k*c_in + c: x_c A_k
        weight = self.gcn.weight.view(k, c_out, c_in).transpose(0, 1).reshape(c_out, k * c_in, 1, 1)
        y = F.conv2d(xa, weight)
        if self.gcn.bias is not None:
            y = _add_joint_bias(y, A.sum(dim=1).t() @ self.gcn.bias.view(k, c_out))
        return y


def _add_joint_bias(y: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``y + bias`` for y (N, C, T, V) channels_last and a per-(joint, channel) bias (V, C), added to each row of the
    (N*T, V*C) matrix y is in memory: the backward's reduction over N and T is then a column sum. Broadcast as
    (1, C, 1, V) instead, forward and backward took 40-50x longer in bf16 (docs/design.md, "Layout-bound ops")."""
    n, c, t, v = y.shape
    rows = y.permute(0, 2, 3, 1).reshape(n * t, v * c) + bias.reshape(1, v * c)
    return rows.view(n, t, v, c).permute(0, 3, 1, 2)


def _aggregate(x: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    """Graph aggregation along joints as one batched matmul on the channels_last layout.

    ``B`` is (V*G, V*H). x is (N, H*C, T, V), channel h*C + c; the result is (N, G*C, T, V), channel g*C + c,
    ``out[n, g*C + c, t, w] = sum_{v, h} B[w*G + g, v*H + h] x[n, h*C + c, t, v]``. With x channels_last, each
    (n, t) row of x is a (V*H, C) matrix in place and each (n, t) row of the result is channels_last again.
    """
    n, _, t, v = x.shape
    rows = x.permute(0, 2, 3, 1).reshape(n * t, B.shape[1], -1)
    return torch.matmul(B, rows).view(n, t, v, -1).permute(0, 3, 1, 2)


class SpatialBasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, residual: bool, **_: object):
        super().__init__()
        self.residual = _block_residual(in_channels, out_channels, 1, residual)
        self.conv = SpatialGraphConv(in_channels, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        y = self.bn(self.conv(x, A))
        if self.residual is not None:
            y = y.add_(self.residual(x))
        return y.relu_()


class SpatialBottleneckBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, residual: bool, reduction: int):
        super().__init__()
        inter = out_channels // reduction
        self.residual = _block_residual(in_channels, out_channels, 1, residual)
        self.conv_down = nn.Conv2d(in_channels, inter, 1)
        self.bn_down = nn.BatchNorm2d(inter)
        self.conv = SpatialGraphConv(inter, inter)
        self.bn = nn.BatchNorm2d(inter)
        self.conv_up = nn.Conv2d(inter, out_channels, 1)
        self.bn_up = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        y = self.bn_down(self.conv_down(x)).relu_()
        y = self.expand(self.bn(self.conv(y, A)).relu_())
        if self.residual is not None:
            y = y.add_(self.residual(x))
        return y.relu_()

    def expand(self, y: torch.Tensor) -> torch.Tensor:
        """``conv_up`` then ``bn_up``: back to the block's width, the widest tensors it keeps for the backward."""
        return self.bn_up(self.conv_up(y))


class TemporalBasicBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, stride: int, residual: bool, **_: object):
        super().__init__()
        self.residual = _temporal_residual(channels, stride, residual)
        self.conv = nn.Conv2d(channels, channels, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, res_module: torch.Tensor | None) -> torch.Tensor:
        y = self.bn(self.conv(x))
        return _add_residuals(y, x, self.residual, res_module).relu_()


class TemporalBottleneckBlock(nn.Module):
    def __init__(self, channels: int, kernel: int, stride: int, residual: bool, reduction: int):
        super().__init__()
        inter = channels // reduction
        self.residual = _temporal_residual(channels, stride, residual)
        self.conv_down = nn.Conv2d(channels, inter, 1)
        self.bn_down = nn.BatchNorm2d(inter)
        self.conv = nn.Conv2d(inter, inter, (kernel, 1), (stride, 1), ((kernel - 1) // 2, 0))
        self.bn = nn.BatchNorm2d(inter)
        self.conv_up = nn.Conv2d(inter, channels, 1)
        self.bn_up = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor, res_module: torch.Tensor | None) -> torch.Tensor:
        y = self.bn_down(self.conv_down(x)).relu_()
        y = self.expand(self.bn(self.conv(y)).relu_())
        return _add_residuals(y, x, self.residual, res_module).relu_()

    expand = SpatialBottleneckBlock.expand


def _block_residual(in_channels: int, out_channels: int, stride: int, enabled: bool) -> nn.Module | None:
    """None = no residual; Identity; or conv1x1+BN (the only kind with state_dict entries)."""
    if not enabled:
        return None
    if stride == 1 and in_channels == out_channels:
        return nn.Identity()
    return conv_bn(in_channels, out_channels, stride)


def _temporal_residual(channels: int, stride: int, enabled: bool) -> nn.Module | None:
    return _block_residual(channels, channels, stride, enabled)


def _add_residuals(
    y: torch.Tensor, x: torch.Tensor, block_res: nn.Module | None, res_module: torch.Tensor | None
) -> torch.Tensor:
    """``y + block_res(x) + res_module`` accumulated in place in y (a fresh BN output, not needed by autograd)."""
    if block_res is not None:
        y = y.add_(block_res(x))
    if res_module is not None:
        y = y.add_(res_module)
    return y


class ResGCNModule(nn.Module):
    """Spatial then temporal block, a learnable edge mask; residuals: docs/original-network.md#modules-and-blocks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        block: str,
        A: torch.Tensor,
        reduction: int,
        initial: bool = False,
        stride: int = 1,
        temporal_kernel: int = 9,
        attention: nn.Module | None = None,
    ):
        super().__init__()
        if block not in BLOCKS:
            raise ConfigError("model.block", block, f"one of {', '.join(BLOCKS)}")
        module_res = not initial and block == "Basic"
        block_res = not initial and block == "Bottleneck"
        self.edge = nn.Parameter(torch.ones_like(A))
        self.residual = _block_residual(in_channels, out_channels, stride, module_res)
        spatial, temporal = (
            (SpatialBasicBlock, TemporalBasicBlock)
            if block == "Basic"
            else (SpatialBottleneckBlock, TemporalBottleneckBlock)
        )
        self.scn = spatial(in_channels, out_channels, residual=block_res, reduction=reduction)
        self.tcn = temporal(out_channels, temporal_kernel, stride, residual=block_res, reduction=reduction)
        self.att = attention

    def forward(self, x: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        res_module = self.residual(x) if self.residual is not None else None
        y = self.tcn(self.scn(x, A * self.edge), res_module)
        return self.att(y) if self.att is not None else y


class ResGCNInputBranch(nn.Module):
    """BN over the raw input channels, then Basic initial modules and ``block`` modules down to 32 channels."""

    def __init__(
        self, structure: list[int], block: str, num_channel: int, A: torch.Tensor, reduction: int, temporal_kernel: int
    ):
        super().__init__()
        self.register_buffer("A", A.clone())
        kw = {"A": A, "reduction": reduction, "temporal_kernel": temporal_kernel}
        layers = [ResGCNModule(num_channel, 64, "Basic", initial=True, **kw)]
        layers += [ResGCNModule(64, 64, "Basic", initial=True, **kw) for _ in range(structure[0] - 1)]
        layers += [ResGCNModule(64, 64, block, **kw) for _ in range(structure[1] - 1)]
        layers.append(ResGCNModule(64, 32, block, **kw))
        self.bn = nn.BatchNorm2d(num_channel)
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = normalize_input(self.bn, x)
        for layer in self.layers:
            x = layer(x, self.A)
        return x


class ResGCN(GaitModel):
    """GaitGraph2 ResGCN: one input branch per multi-input feature, a shared main stream, GAP and a linear head.

    Input (N, T, V, I, C) (``features``: the multi-input variant, gaitgraph2 or corrected); returns
    :class:`ModelOutput` with the embedding (N, E) and the last feature map (N, 256, T', V). The embedding is not
    L2-normalised (GaitGraph2); ``structure`` is the 4 stage depths, e.g. [1, 1, 1, 1] for n21. ``attention``
    (None, or a kind or original prefix of :data:`gaitgraph.models.attention.ALIASES`) adds that layer to every
    main-stream module, never to the input branches, as ResGCN v1's prefixed model names do.
    """

    recomputed = (ResGCNModule,)
    recomputed_partially = {SpatialBottleneckBlock: "expand", TemporalBottleneckBlock: "expand"}

    def __init__(
        self,
        skeleton: Skeleton,
        structure: list[int],
        block: str,
        reduction: int,
        embedding_size: int = 128,
        num_input: int = 3,
        num_channel: int = 5,
        attention: str | None = None,
        temporal_kernel: int = 9,
        features: str = "gaitgraph2",
    ):
        super().__init__(skeleton, features)
        structure = [int(s) for s in structure]
        if len(structure) != 4 or min(structure) < 1:
            raise ConfigError("model.structure", structure, "4 stage depths >= 1")
        A = torch.from_numpy(hop_adjacency(skeleton.num_joints, skeleton.links, MAX_HOP))
        self.register_buffer("A", A)
        self.input_branches = nn.ModuleList(
            ResGCNInputBranch(structure, block, num_channel, A, reduction, temporal_kernel) for _ in range(num_input)
        )

        parts = list(skeleton.parts.values())

        def module(c_in: int, c_out: int, stride: int = 1) -> ResGCNModule:
            att = None if attention is None else build_attention(attention, c_out, parts, skeleton.num_joints)
            return ResGCNModule(
                c_in, c_out, block, A, reduction, stride=stride, temporal_kernel=temporal_kernel, attention=att
            )

        main = [module(32 * num_input, 128, stride=2)]
        main += [module(128, 128) for _ in range(structure[2] - 1)]
        main.append(module(128, 256, stride=2))
        main += [module(256, 256) for _ in range(structure[3] - 1)]
        self.main_stream = nn.ModuleList(main)
        self.global_pooling = GlobalAveragePool()
        self.fcn = nn.Linear(256, embedding_size)
        self._init_parameters()

    def _init_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.001)
                nn.init.zeros_(m.bias)
        # zero_init_lastBN: every bottleneck starts as its residual path
        for m in self.modules():
            if isinstance(m, (SpatialBottleneckBlock, TemporalBottleneckBlock)):
                nn.init.zeros_(m.bn_up.weight)

    @torch.no_grad()
    def fused_for_inference(self) -> ResGCN:
        """An eval-mode copy with every BatchNorm that follows a conv folded into it (and the input BatchNorm
        into the first graph conv); same outputs up to float rounding, fewer passes over the activations.

        The copy is for inference only: its state_dict differs (folded BatchNorms become ``nn.Identity``) and
        training it would not train the original. Attention layers keep their BatchNorms.
        """
        fused = copy.deepcopy(self).eval()
        for module in fused.modules():
            for conv_name, bn_name in _CONV_BN_PAIRS.get(type(module), ()):
                _fold_into(getattr(module, conv_name), getattr(module, bn_name))
                setattr(module, bn_name, nn.Identity())
            if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d):
                _fold_into(module[0], module[1])  # the conv1x1+BN residuals
                module[1] = nn.Identity()
            if isinstance(module, ResGCNInputBranch):
                _fold_input_bn(module)
        return fused

    def forward(self, x: torch.Tensor) -> ModelOutput:
        if x.dim() != 5 or x.shape[3] != len(self.input_branches):
            raise ValueError(f"ResGCN input: expected (N, T, V, {len(self.input_branches)}, C), found {tuple(x.shape)}")
        x = x.permute(0, 3, 4, 1, 2)  # N, I, C, T, V
        x = torch.cat([branch(x[:, i]) for i, branch in enumerate(self.input_branches)], dim=1)
        for layer in self.main_stream:
            x = layer(x, self.A)
        embedding = self.fcn(self.global_pooling(x))
        return ModelOutput(embedding, x)


def _channels_last(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last)


def normalize_input(bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input BatchNorm of a branch on the (N, C, T, V) pose channels, then channels_last for the network.

    The BatchNorm runs on the contiguous layout: with 3-5 channels, channels_last BatchNorm took 5x longer
    forward and backward (docs/design.md, "Layout-bound ops")."""
    return _channels_last(bn(x.contiguous()))


class GlobalAveragePool(nn.Module):
    """Mean over time and joints, (N, C, T, V) channels_last -> (N, C), as one matmul with a constant row.

    Same value as ``AdaptiveAvgPool2d(1)``; its backward writes the gradient in channels_last, where the pooling's
    broadcast gradient made the ReLU backward before it 4x slower (docs/design.md, "Layout-bound ops").
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, v = x.shape
        weight = torch.full((1, t * v), 1.0 / (t * v), dtype=x.dtype, device=x.device)
        return torch.matmul(weight, x.permute(0, 2, 3, 1).reshape(n, t * v, c)).view(n, c)


_CONV_BN_PAIRS = {
    SpatialBasicBlock: (("conv", "bn"),),
    TemporalBasicBlock: (("conv", "bn"),),
    SpatialBottleneckBlock: (("conv_down", "bn_down"), ("conv", "bn"), ("conv_up", "bn_up")),
    TemporalBottleneckBlock: (("conv_down", "bn_down"), ("conv", "bn"), ("conv_up", "bn_up")),
}


def _bn_scale_shift(bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Eval-mode BatchNorm as ``x * scale + shift`` per channel."""
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("fused_for_inference: a BatchNorm without running statistics cannot be folded")
    scale = torch.rsqrt(bn.running_var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight
    shift = -bn.running_mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias
    return scale, shift


def _fold_into(conv: nn.Module, bn: nn.BatchNorm2d) -> None:
    """Make ``conv`` (a Conv2d or a SpatialGraphConv) compute ``bn(conv(x))``, in place on its parameters."""
    scale, shift = _bn_scale_shift(bn)
    if isinstance(conv, SpatialGraphConv):
        # sum_k (s W_k x + s b_k) A_k + shift: the shift goes after the aggregation (A's columns do not sum to 1)
        _scale_rows(conv.gcn, scale.repeat(conv.partitions))
        conv.out_shift = shift
    else:
        _scale_rows(conv, scale)
        conv.bias.add_(shift)


def _scale_rows(conv: nn.Conv2d, scale: torch.Tensor) -> None:
    """Multiply every output channel of ``conv`` (weight and bias) by ``scale``; adds a zero bias if it had none."""
    conv.weight.mul_(scale.view(-1, 1, 1, 1))
    if conv.bias is None:
        conv.bias = nn.Parameter(torch.zeros_like(scale))
    conv.bias.mul_(scale)


def _fold_input_bn(branch: ResGCNInputBranch) -> None:
    """Fold the branch's input BatchNorm into the first graph conv when nothing else reads the raw input."""
    first = branch.layers[0]
    if first.residual is not None or not isinstance(first.scn, SpatialBasicBlock) or first.scn.residual is not None:
        return
    scale, shift = _bn_scale_shift(branch.bn)
    gcn = first.scn.conv.gcn
    # W (s x + t) + b = (W diag(s)) x + (W t + b)
    gcn_bias = gcn.weight.flatten(1) @ shift
    gcn.weight.mul_(scale.view(1, -1, 1, 1))
    gcn.bias = nn.Parameter(gcn_bias if gcn.bias is None else gcn.bias + gcn_bias)
    branch.bn = nn.Identity()
