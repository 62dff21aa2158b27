"""``python -m gaitgraph.visualize ckpt_path=...``: class-activation GIFs (docs/original-network.md#activation-maps).

For each chosen test sequence the model sees its test-time window (reflect-padded, centre crop of
``dataset.sequence_length`` frames); every window frame is drawn with each joint coloured (plasma, 0..1)
and sized (128 r) by its activation r. Output: ``<run dir>/activations/{subject}-{view}-{condition}-{seq}.gif``
(the condition is part of the name because e.g. CASIA-B's bg-01 and nm-01 share subject, view and seq),
and with ``png=true`` every frame as ``activations/png/{same stem}-{t:03d}.png``.
The drawing is pure (arrays in, RGB frames out); files appear complete or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gaitgraph.process_env  # noqa: F401 - sets the process environment before torch loads

import matplotlib

matplotlib.use("Agg")  # headless: never a display backend

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402
from PIL import Image  # noqa: E402

from gaitgraph.cli import entry  # noqa: E402
from gaitgraph.data.poseset import PoseSet  # noqa: E402
from gaitgraph.data.transforms import center_window_rows  # noqa: E402
from gaitgraph.engine.restore import load_run  # noqa: E402
from gaitgraph.errors import ConfigError, short_repr  # noqa: E402
from gaitgraph.evaluation.embed import eval_length  # noqa: E402
from gaitgraph.progress import progress  # noqa: E402
from gaitgraph.skeletons import Skeleton  # noqa: E402
from gaitgraph.utils import atomic_write, run_dir_of  # noqa: E402

log = logging.getLogger(__name__)

#: Joints (and bones touching them) below this confidence are not drawn (docs/original-network.md#activation-maps).
MIN_CONFIDENCE = 0.025
#: Marker area of a joint with activation 1 (points^2).
MAX_MARKER = 128.0
SELECT_KEYS = ("subject", "view", "condition", "seq")


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


def select_sequences(meta: pd.DataFrame, select: dict[str, Any]) -> np.ndarray:
    """Row indices of ``meta`` matching every non-null ``select`` filter (a value or a list), at most ``limit``."""
    unknown = set(select) - {*SELECT_KEYS, "limit"}
    if unknown:
        raise ConfigError(
            f"select.{sorted(unknown)[0]}",
            select[sorted(unknown)[0]],
            f"a key of select: {', '.join([*SELECT_KEYS, 'limit'])}",
        )
    mask = np.ones(len(meta), dtype=bool)
    for key in SELECT_KEYS:
        wanted = select.get(key)
        if wanted is None:
            continue
        wanted = wanted if isinstance(wanted, (list, tuple)) else [wanted]
        column = meta[key]
        cast = int if pd.api.types.is_integer_dtype(column) else str
        try:
            values = [cast(w) for w in wanted]
        except ValueError:
            raise ConfigError(f"select.{key}", wanted, f"integers (the test split's {key} values)") from None
        mask &= column.isin(values).to_numpy()
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        present = {k: sorted(map(str, meta[k].unique()))[:20] for k in SELECT_KEYS}
        raise ConfigError(
            "select", dict(select), f"a choice matching a test sequence; present: {short_repr(present, 200)}"
        )
    limit = select.get("limit")
    return rows[: int(limit)] if limit else rows


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


def visualize(cfg: DictConfig, overrides: Sequence[str] | None = None) -> list[Path]:
    """Draw the activation GIF of every selected test sequence; return the GIF paths."""
    run = load_run(cfg, overrides)
    meta = run.test.meta
    chosen = select_sequences(meta, OmegaConf.to_container(cfg.select, resolve=True))
    out_dir = run_dir_of(cfg) / "activations"
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.png:
        (out_dir / "png").mkdir(exist_ok=True)
    pairs = bones(run.skeleton)
    length = eval_length(run.dataset_cfg)
    written = []
    batch = int(cfg.trainer.eval_batch_size)
    for start in progress(range(0, len(chosen), batch), desc="activations", unit="batch"):
        idx = chosen[start : start + batch]
        windows, activation, source = sequence_activations(run.model, run.test, idx, run.skeleton, length, run.device)
        for i, row in enumerate(idx):
            m = meta.iloc[row]
            stem = f"{int(m.subject):03d}-{m.view}-{m.condition}-{int(m.seq):02d}"
            titles = [f"{m.subject}, {m.view}, {m.condition}-{m.seq}, frame {f}" for f in source[i]]
            frames = draw_frames(windows[i], activation[i], pairs, titles, size_px=cfg.size_px, extent=cfg.extent)
            write_gif(frames, out_dir / f"{stem}.gif", duration_ms=cfg.duration_ms)
            if cfg.png:
                for t, frame in enumerate(frames):
                    write_png(frame, out_dir / "png" / f"{stem}-{t:03d}.png")
            written.append(out_dir / f"{stem}.gif")
    log.info("wrote %d GIFs to %s", len(written), out_dir)
    print(f"wrote {len(written)} activation GIFs to {out_dir}")
    return written


@entry("visualize")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    visualize(cfg)


if __name__ == "__main__":
    main()
