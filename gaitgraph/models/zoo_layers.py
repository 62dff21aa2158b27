"""Pieces shared by the FastPoseGait zoo families (GaitGraph1, GaitTR, GPGait)."""

from __future__ import annotations

import torch
from torch import nn


def fastposegait_init(model: nn.Module) -> None:
    """Xavier-uniform convolutions with zero bias, N(0, 0.001) linear layers, BatchNorm2d at (1, 0).

    FastPoseGait re-initialises every network so after building it, overriding the layers' own initialisers:
    training from scratch starts from the reference's distributions.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=0.001)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def joint_batchnorm(bn: nn.BatchNorm1d, x: torch.Tensor, joint_major: bool) -> torch.Tensor:
    """BatchNorm1d over one feature per (channel, joint) of (N, C, T, V) x.

    ``joint_major``: feature index v*C + c (the networks' input BatchNorms), else c*V + v (GaitTR's blocks).
    """
    n, c, t, v = x.shape
    order = (0, 3, 1, 2) if joint_major else (0, 1, 3, 2)
    y = bn(x.permute(*order).reshape(n, c * v, t)).view(n, *(x.shape[i] for i in order[1:]))
    return y.permute(0, 2, 3, 1) if joint_major else y.permute(0, 1, 3, 2)
