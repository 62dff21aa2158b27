"""Load released weights by their original names: GaitGraph2 / GaitGraph into ``ResGCN``, FastPoseGait checkpoints
into the zoo models (GaitGraph1, GaitTR, GPGait).

Files are read with ``torch.load(weights_only=True)`` only: tensors and plain containers, never arbitrary pickled
objects. A file that holds more (e.g. a training script's option object) is refused with a CheckpointError that
says how to extract its weights from a trusted copy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch
from torch import nn

from gaitgraph.errors import CheckpointError
from gaitgraph.utils import load_checkpoint


def _unwrap(obj: object, source: str) -> Mapping[str, torch.Tensor]:
    """The state_dict inside a plain dict, a Lightning checkpoint ({"state_dict": ...}) or a GaitGraph1 /
    FastPoseGait one ({"model": ..., "optimizer": ..., "iteration": ...})."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{source}: expected a state_dict or checkpoint dict, found {type(obj).__name__}")
    for key in ("state_dict", "model"):
        if key in obj and isinstance(obj[key], Mapping):
            return obj[key]
    return obj


def _strip_prefix(state: Mapping[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    """Remove the wrapper prefix (e.g. ``model.``, ``backbone.``, ``module.``) in front of the original keys.

    The prefix is the one under which most of ``expected`` appears; keys outside it (loss, heads) are dropped.
    """
    candidates = {""}
    for key in state:
        candidates.update(key[: -len(name)] for name in expected if key.endswith("." + name))
    best = max(candidates, key=lambda p: (sum(k.startswith(p) and k[len(p) :] in expected for k in state), -len(p)))
    if best == "":
        return dict(state)
    return {k[len(best) :]: v for k, v in state.items() if k.startswith(best)}


def load_pretrained(model: nn.Module, path_or_dict: str | os.PathLike | Mapping) -> nn.Module:
    """Strictly load original-named weights into ``model``; CheckpointError listing missing/unexpected keys and
    shape clashes. Accepts a state_dict, a Lightning / GaitGraph1 / FastPoseGait checkpoint, or a file of one."""
    source = "state_dict" if isinstance(path_or_dict, Mapping) else os.fspath(path_or_dict)
    obj = path_or_dict if isinstance(path_or_dict, Mapping) else load_checkpoint(source)
    own = model.state_dict()
    state = _strip_prefix(_unwrap(obj, source), set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, found {tuple(state[k].shape)}"
        for k in own
        if k in state and tuple(own[k].shape) != tuple(state[k].shape)
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label} keys ({len(keys)}): {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
            for label, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        if shapes:
            parts.append(
                f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:3])}{' ...' if len(shapes) > 3 else ''}"
            )
        raise CheckpointError(
            f"{source}: its weights do not match the model ({'; '.join(parts)}); check the model option (structure, "
            "widths, embedding size, classes) and the keypoint layout (V) the checkpoint was trained with"
        )
    model.load_state_dict(state, strict=True)
    return model
