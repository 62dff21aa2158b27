"""A toy model family and a toy pose format declared outside the package, as a user's own would be.

The family registers its input features by name and declares its recomputable blocks on the class
(tests/test_registries.py trains it through the real entry point); the format (``toy_npy``: one NumPy file
``<subject>_<seq>.toy.npy`` of [T, V, 3] poses per sequence) registers its detection and reader
(tests/test_predict_families.py reads it with gaitgraph.predict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gaitgraph.data.formats import PoseFormat, register_format
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.readers import PoseReader
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


class ToyNpyReader(PoseReader):
    """Every ``<subject>_<seq>.toy.npy`` file of a folder (or one such file): one sequence each."""

    label = "toy poses"

    def files(self) -> list[Path]:
        return [self.root] if self.root.is_file() else sorted(self.root.glob("*.toy.npy"))

    def read(self) -> PoseSet:
        arrays, meta = [], []
        for path in self.files():
            subject, seq = path.name.removesuffix(".toy.npy").split("_")
            arrays.append(np.load(path, allow_pickle=False))  # data, never code
            meta.append({"subject": int(subject), "condition": "nm", "seq": int(seq), "view": "000"})
            meta[-1]["source"] = path.name
        return self.apply_short_policy(PoseSet.from_sequences(arrays, meta))


def _is_toy(path: Path) -> bool:
    return path.name.endswith(".toy.npy") if path.is_file() else any(path.glob("*.toy.npy"))


def _open_toy(path: Path, settings: dict[str, Any], skeleton: Skeleton) -> PoseReader:
    return ToyNpyReader(path, **settings)


TOY_FORMAT = register_format(
    PoseFormat("toy_npy", "coco17", ToyNpyReader, _is_toy, _open_toy, "<subject>_<seq>.toy.npy files")
)
