"""Class-activation maps of a network's last feature map, and their drawing (docs/original-network.md#activation-maps).

Every window frame is drawn with each joint coloured (plasma, 0..1) and sized (128 r) by its activation r. The
drawing is pure (arrays in, RGB frames out); files appear complete or not at all. Headless (Agg). Used by
``gaitgraph.visualize``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: never a display backend

import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from gaitgraph.data.poseset import PoseSet  # noqa: E402
from gaitgraph.data.transforms import center_window_rows  # noqa: E402
from gaitgraph.skeletons import Skeleton  # noqa: E402
from gaitgraph.utils import atomic_write  # noqa: E402

#: Joints (and bones touching them) below this confidence are not drawn (docs/original-network.md#activation-maps).
MIN_CONFIDENCE = 0.025
#: Marker area of a joint with activation 1 (points^2).
MAX_MARKER = 128.0


def activation_map(fcn_weight: np.ndarray, feature: np.ndarray, n_frames: int) -> np.ndarray:
    """[n_frames, V] activation in [0, 1] of one sequence (docs/original-network.md#activation-maps).

    ``result = relu(einsum("kc,ctv->ktv", fcn_weight [K, C], feature [C, T', V])) / global max``; frame t
    takes ``max_k result[k, t * T' // n_frames, v]``, i.e. ``t // 4`` for GaitGraph2's T = 60, T' = 15.
    An all-negative map gives zeros.
    """
    result = np.maximum(np.einsum("kc,ctv->ktv", fcn_weight, feature), 0.0)
    peak = result.max()
    if peak > 0:
        result = result / peak
    per_step = result.max(axis=0)  # [T', V]
    step = np.arange(n_frames) * per_step.shape[0] // n_frames
    return per_step[step]


def bones(skeleton: Skeleton) -> np.ndarray:
    """[B, 2] joint pairs drawn: every joint to its ``connect_joint`` (self-links skipped) plus ``extra_bone``."""
    pairs = [(v, p) for v, p in enumerate(skeleton.connect_joint) if v != p]
    if skeleton.extra_bone:
        pairs.append(tuple(skeleton.extra_bone))
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def draw_frames(
    joints: np.ndarray,
    activation: np.ndarray,
    bone_pairs: np.ndarray,
    titles: Sequence[str],
    size_px: int = 500,
    dpi: int = 96,
    extent: float | None = None,
) -> list[np.ndarray]:
    """One [size_px, size_px, 3] uint8 RGB image per frame of ``joints`` [T, V, 3] (x, y, conf).

    Axes are centred on the mean x, y of the sequence's visible joints, y pointing down as in the image;
    ``extent`` is the half-width in data units (None: fit the sequence, 10% margin; GaitGraph2 used 450 px).
    """
    if joints.ndim != 3 or activation.shape != joints.shape[:2] or len(titles) != len(joints):
        raise ValueError(
            f"draw_frames: joints [T, V, 3], activation [T, V] and T titles expected; found {joints.shape}, "
            f"{activation.shape}, {len(titles)} titles"
        )
    xy, visible = joints[..., :2], joints[..., 2] >= MIN_CONFIDENCE
    center = xy[visible].mean(axis=0) if visible.any() else np.zeros(2)
    if extent is None:
        extent = float(np.abs(xy[visible] - center).max()) * 1.1 if visible.any() else 1.0
        extent = max(extent, 1e-3)

    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_axes((0.05, 0.05, 0.75, 0.85))
    ax.set_xlim(center[0] - extent, center[0] + extent)
    ax.set_ylim(center[1] + extent, center[1] - extent)  # flipped: image y grows downwards
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    lines = ax.add_collection(LineCollection([], colors="dimgrey", alpha=0.5, linewidths=3))
    points = ax.scatter([], [], c=[], s=[], cmap="plasma", vmin=0.0, vmax=1.0, zorder=3)
    fig.colorbar(points, cax=fig.add_axes((0.84, 0.05, 0.04, 0.85)), label="activation")
    title = ax.set_title("")

    frames = []
    for t in range(len(joints)):
        shown = bone_pairs[visible[t, bone_pairs].all(axis=1)]
        lines.set_segments(xy[t, shown])
        v = np.flatnonzero(visible[t])
        points.set_offsets(xy[t, v].reshape(-1, 2))
        points.set_array(activation[t, v])
        points.set_sizes(MAX_MARKER * activation[t, v])
        title.set_text(titles[t])
        canvas.draw()
        frames.append(np.asarray(canvas.buffer_rgba())[..., :3].copy())
    return frames


def write_gif(frames: Sequence[np.ndarray], path: Path, duration_ms: int = 150) -> None:
    """Write RGB frames as a looping GIF, atomically (temp file in the same folder, then rename)."""
    images = [Image.fromarray(f) for f in frames]
    atomic_write(
        path,
        lambda tmp: images[0].save(
            tmp, format="GIF", save_all=True, append_images=images[1:], duration=duration_ms, loop=0
        ),
    )


def write_png(frame: np.ndarray, path: Path) -> None:
    """Write one RGB frame as a PNG, atomically."""
    atomic_write(path, lambda tmp: Image.fromarray(frame).save(tmp, format="PNG"))


def sequence_activations(
    model: torch.nn.Module,
    poses: PoseSet,
    idx: np.ndarray,
    skeleton: Skeleton,
    sequence_length: int,
    device: torch.device,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(windows [N, L, V, 3], activation [N, L, V], source frame index [N, L]) of sequences ``idx``."""
    rows = center_window_rows(poses.lengths[idx], sequence_length)
    windows = poses.frames[poses.offsets[idx][:, None] + rows]
    model.eval()
    with torch.inference_mode():
        x = torch.from_numpy(windows).to(device)
        feature = model(model.input_features(x)).feature_map
    weight = model.fcn.weight.detach().cpu().numpy()
    feature = feature.float().cpu().numpy()
    activation = np.stack([activation_map(weight, f, sequence_length) for f in feature])
    return windows, activation, rows
