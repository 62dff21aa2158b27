"""Test-time embeddings of a PoseSet, with GaitGraph2's TTA (docs/protocols.md#test-time-augmentation)."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import center_windows
from gaitgraph.models.base import GaitModel
from gaitgraph.progress import progress as progress_bar
from gaitgraph.skeletons import Skeleton


def eval_length(dataset_cfg: DictConfig) -> int:
    """Frames of the centre window that evaluation embeds: ``dataset.eval_sequence_length``, or the training
    window ``dataset.sequence_length`` where that is null (or absent, in a config stored before the option)."""
    length = OmegaConf.select(dataset_cfg, "eval_sequence_length", default=None)
    return int(dataset_cfg.sequence_length if length is None else length)


def embed_poseset(
    model: GaitModel,
    poses: PoseSet,
    skeleton: Skeleton,
    sequence_length: int,
    tta: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> np.ndarray:
    """Embeddings [S, D] of every sequence (row i = ``poses.meta`` row i); [S, 3*D] with ``tta``. Part-based models
    (GPGait) give [S, D, P] ([S, 3*D, P] with ``tta``).

    ``model`` (a :class:`~gaitgraph.models.GaitModel`) must already sit on ``device``; each window's embedding is
    ``model.embed(window)``, the model's own evaluation embedding.
    TTA concatenates, in this order, the embeddings of the original window, the time-reversed window and the
    left/right label-swapped window (``x[:, :, flip_idx]``), features recomputed for each; the distance
    L2-normalises the concatenated vector. The model's train/eval mode is restored afterwards. A model that
    offers ``fused_for_inference()`` (ResGCN: BatchNorm folded into the convolutions, same outputs up to float
    rounding) embeds through that copy, which is about 1.4x faster on a CPU.
    """
    if len(poses) == 0:
        raise ValueError("embed_poseset: the PoseSet holds no sequence")
    if poses.num_joints != skeleton.num_joints:
        raise ValueError(
            f"embed_poseset: poses have {poses.num_joints} joints, keypoints '{skeleton.layout}' has "
            f"{skeleton.num_joints}"
        )
    was_training = model.training
    model.eval()
    net = model.fused_for_inference() if hasattr(model, "fused_for_inference") else model
    flip_idx = torch.as_tensor(skeleton.flip_idx, device=device)
    out = []
    try:
        with torch.inference_mode():
            starts = range(0, len(poses), batch_size)
            for start in progress_bar(starts, desc="embed", unit="batch", enabled=progress):
                idx = np.arange(start, min(start + batch_size, len(poses)))
                x = torch.from_numpy(center_windows(poses, idx, sequence_length)).to(device)
                variants = [x, x.flip(1), x.index_select(2, flip_idx)] if tta else [x]
                parts = [net.embed(v) for v in variants]
                out.append(torch.cat(parts, dim=1).float().cpu())
    finally:
        model.train(was_training)
    return torch.cat(out).numpy()
