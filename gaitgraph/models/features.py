"""Input features of the model families, by name (``model.features``): pure functions of a pose batch.

:data:`FEATURES` is the one registry of them: a family declares its features where it defines the function, with
``@register_features("<name>")``, and a model config names one by ``features: <name>``. GaitGraph2's joint,
velocity and bone branches of 5 channels each are here (docs/original-network.md#multi-input-features); the
FastPoseGait zoo's (GaitGraph1, GaitTR, GPGait) in :mod:`gaitgraph.models.zoo_features`."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import Skeleton

#: A family's input features: ``(poses (N, T, V, 3), skeleton)`` -> what its ``forward`` takes.
FeatureFunction = Callable[[torch.Tensor, Skeleton], torch.Tensor]
#: ``model.features`` name -> its function, filled by :func:`register_features` where each function is defined
#: (the built-in modules are imported by :mod:`gaitgraph.models`, so their names are always there).
FEATURES: dict[str, FeatureFunction] = {}

VARIANTS = ("gaitgraph2", "corrected")
#: Channels per branch; the model's ``num_channel``.
NUM_CHANNELS = 5


def multi_input(x: torch.Tensor, skeleton: Skeleton, variant: str = "gaitgraph2") -> torch.Tensor:
    """(..., T, V, 3) poses (x, y, conf) -> (..., T, V, 3 branches, 5 channels) on x's device and dtype.

    ``gaitgraph2`` reproduces the original bit for bit, quirks included (needed for released weights):
    joint ``[x, y, conf, x-xc, y-yc]``; velocity ``[dx1, dy1, 0, conf, dy2]`` with dk = p[t+k]-p[t] and zero
    motion in the last 2 frames; bone ``[bx, by, 0, conf, arccos(by/len)]`` with b = p[v]-p[parent(v)].
    ``corrected`` keeps what the original meant to compute: velocity ``[dx1, dy1, conf, dx2, dy2]`` (dx1 zero only
    in the last frame, dx2 in the last 2), bone ``[bx, by, conf, arccos(bx/len), arccos(by/len)]``.
    """
    if variant not in VARIANTS:
        raise ConfigError("model.features", variant, f"one of {', '.join(VARIANTS)}")
    if x.dim() < 3 or x.shape[-1] != 3 or x.shape[-2] != skeleton.num_joints:
        raise ValueError(
            f"multi_input: expected (..., T, {skeleton.num_joints}, 3) poses of layout '{skeleton.layout}', "
            f"found {tuple(x.shape)}"
        )
    xy, conf = x[..., :2], x[..., 2]
    T = x.shape[-3]
    out = x.new_zeros(*x.shape[:-1], 3, NUM_CHANNELS)

    joint = out[..., 0, :]
    joint[..., :3] = x
    joint[..., 3:] = xy - xy[..., :, skeleton.center : skeleton.center + 1, :]

    velocity = out[..., 1, :]
    if T > 2:
        velocity[..., : T - 2, :, 3:] = xy[..., 2:, :, :] - xy[..., :-2, :, :]
    first_until = T - 2 if variant == "gaitgraph2" else T - 1
    if first_until > 0:
        velocity[..., :first_until, :, :2] = xy[..., 1 : first_until + 1, :, :] - xy[..., :first_until, :, :]

    bone = out[..., 2, :]
    parent = torch.as_tensor(skeleton.connect_joint, device=x.device)
    bone[..., :2] = xy - xy.index_select(-2, parent)
    length = torch.sqrt(torch.pow(bone[..., 0], 2) + torch.pow(bone[..., 1], 2)) + 0.0001
    bone[..., 3] = torch.acos(bone[..., 0] / length)
    bone[..., 4] = torch.acos(bone[..., 1] / length)

    # The original wrote conf over channel 3 of velocity and bone, leaving channel 2 at zero.
    conf_channel = 3 if variant == "gaitgraph2" else 2
    velocity[..., conf_channel] = conf
    bone[..., conf_channel] = conf
    return out


def register_features(name: str) -> Callable[[FeatureFunction], FeatureFunction]:
    """Decorator: declare ``function`` as the input features ``name`` (``model.features: <name>``).

    A name is taken once: registering another function under it raises ValueError (two families would silently
    share a name otherwise)."""

    def declare(function: FeatureFunction) -> FeatureFunction:
        known = FEATURES.setdefault(name, function)
        if known is not function:
            raise ValueError(f"input features '{name}' are already registered ({known!r}); pick another name")
        return function

    return declare


for _variant in VARIANTS:
    register_features(_variant)(partial(multi_input, variant=_variant))
