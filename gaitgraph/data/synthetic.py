"""Synthetic gait data in the CASIA-B CSV and OUMVLP-Pose folder formats (docs/formats.md#synthetic-generator).

A 3D stick walker carries identity: every subject has its own limb lengths, stride, cadence,
arm swing, posture lean and head size; gait is sinusoidal (hip, knee, arm swing, vertical bob).
Each walk is rotated about the vertical axis to the camera's view angle and projected with a
pinhole camera. Conditions: ``bg`` damps one arm's swing and drops that shoulder, ``cl`` widens
torso and hips and doubles the joint noise. Per-frame Gaussian pixel noise, confidences in
(0, 1] and randomly dropped frames (gaps) mimic a pose estimator.

Run ``python -m gaitgraph.data.synthetic`` (config ``conf/synthetic.yaml``), or call
:func:`generate_casia_b` / :func:`generate_oumvlp`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gaitgraph.cli import entry
from gaitgraph.data import casia_b, oumvlp
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import COCO17_JOINTS, OPENPOSE18_JOINTS, OPENPOSE18_TO_COCO17
from gaitgraph.utils import atomic_write, current_umask

log = logging.getLogger(__name__)

FPS = 25.0
CASIA_B_VIEWS = tuple(int(v) for v in casia_b.VIEWS)
CASIA_B_CONDITIONS = {cond: len(seqs) for cond, seqs in casia_b.CONDITION_SEQS.items()}
OUMVLP_VIEWS = tuple(int(v) for v in oumvlp.VIEWS)
#: COCO-17 index per OpenPose-18 joint (the inverse of the field's conversion); -1 = neck (mid-shoulder).
_COCO_FOR_OPENPOSE18 = tuple(
    OPENPOSE18_TO_COCO17.index(j) if j in OPENPOSE18_TO_COCO17 else -1 for j in range(len(OPENPOSE18_JOINTS))
)


@dataclass(frozen=True)
class Camera:
    """Pinhole camera ``distance`` metres from the walk's centre, ``px_per_m`` pixels per metre there."""

    width: int
    height: int
    px_per_m: float
    distance: float = 10.0
    eye_height: float = 1.0


CASIA_B_CAMERA = Camera(width=320, height=240, px_per_m=55.0)
OUMVLP_CAMERA = Camera(width=1280, height=980, px_per_m=330.0, distance=6.0)


@dataclass
class Walks:
    """Sequences to render: one entry per sequence (arrays of length S)."""

    subject: np.ndarray
    view_deg: np.ndarray
    condition: np.ndarray  # str
    n_frames: np.ndarray


def subject_traits(n_subjects: int, seed: int) -> dict[str, np.ndarray]:
    """Identity of each subject (index 0 = subject 1): body sizes in metres, gait in rad / Hz."""
    rng = np.random.default_rng([seed, 1])
    z = rng.standard_normal((n_subjects, 13))
    height = 1.70 + 0.08 * z[:, 0]
    return {
        "hip_height": height * (0.53 + 0.015 * z[:, 1]),
        "thigh_share": 0.5 + 0.02 * z[:, 2],
        "torso": height * (0.30 + 0.012 * z[:, 3]),
        "upper_arm": height * (0.19 + 0.01 * z[:, 4]),
        "forearm": height * (0.16 + 0.01 * z[:, 5]),
        "shoulder_width": height * (0.23 + 0.015 * z[:, 6]),
        "hip_width": height * (0.16 + 0.01 * z[:, 7]),
        "head": height * (0.12 + 0.008 * z[:, 8]),
        "hip_swing": 0.42 + 0.05 * z[:, 9],
        "knee_flex": 0.9 + 0.1 * z[:, 10],
        "cadence": 0.95 + 0.07 * z[:, 11],
        "arm_swing": 0.45 + 0.1 * np.abs(z[:, 12]),
        "lean": 0.05 + 0.03 * rng.standard_normal(n_subjects),
    }


def render(walks: Walks, traits: dict[str, np.ndarray], camera: Camera, noise_px: float, seed: int) -> np.ndarray:
    """Pixel poses ``[sum(n_frames), 17, 3]`` (x, y, confidence, COCO-17) for all walks, back to back."""
    rng = np.random.default_rng([seed, 2])
    n = walks.n_frames.astype(np.int64)
    rows = int(n.sum())
    seq = np.repeat(np.arange(len(n)), n)
    f32 = np.float32
    t = ((np.arange(rows) - np.repeat(np.cumsum(n) - n, n)) / FPS).astype(f32)
    tr = {k: v.astype(f32)[walks.subject[seq] - 1] for k, v in traits.items()}
    bg = np.repeat(walks.condition == "bg", n)
    cl = np.repeat(walks.condition == "cl", n)

    cadence = tr["cadence"] * np.repeat(rng.normal(1.0, 0.02, len(n)).astype(f32), n)
    phase = 2 * np.pi * cadence * t + np.repeat(rng.uniform(0, 2 * np.pi, len(n)).astype(f32), n)
    leg = tr["hip_height"]
    thigh, shin = leg * tr["thigh_share"], leg * (1 - tr["thigh_share"])
    speed = 4 * leg * np.sin(tr["hip_swing"]) * cadence  # two steps per cycle
    walked = speed * (t - np.repeat((n / FPS / 2).astype(f32), n))
    half_shoulder = tr["shoulder_width"] / 2 * np.where(cl, f32(1.2), f32(1.0))
    half_hip = tr["hip_width"] / 2 * np.where(cl, f32(1.25), f32(1.0))

    # Body frame, one [rows, 17] array per axis (metres): forward, up, left; the ground point
    # below the pelvis is the origin.
    fwd, up, left = (np.zeros((rows, 17), f32) for _ in range(3))
    pelvis_up = leg - 0.02 * leg * (1 - np.cos(2 * phase))
    neck_f = tr["torso"] * np.sin(tr["lean"])
    neck_u = pelvis_up + tr["torso"] * np.cos(tr["lean"])
    i = COCO17_JOINTS.index
    for side, sign, shift in (("left", 1.0, 0.0), ("right", -1.0, np.pi)):
        hip_angle = tr["hip_swing"] * np.sin(phase + shift)
        knee_angle = tr["knee_flex"] * np.clip(np.sin(phase + shift + 1.2), 0, None) ** 2
        swing = tr["arm_swing"] * np.sin(phase + shift + np.pi)
        elbow_bend = 0.3 + 0.15 * (1 + np.sin(phase + shift + np.pi))
        drop = 0.0
        if side == "right":  # a bag in the right hand: little swing, bent elbow, lower shoulder
            swing = np.where(bg, 0.15 * swing, swing)
            elbow_bend = np.where(bg, elbow_bend + 0.4, elbow_bend)
            drop = np.where(bg, f32(0.03), f32(0.0))
        chains = (
            ("hip", 0.0, pelvis_up, half_hip, (("knee", thigh, hip_angle), ("ankle", shin, hip_angle - knee_angle))),
            ("shoulder", neck_f, neck_u - drop, half_shoulder,
             (("elbow", tr["upper_arm"], swing), ("wrist", tr["forearm"], swing + elbow_bend))),
        )
        for root, f0, u0, half_width, limbs in chains:
            j = i(f"{side}_{root}")
            fwd[:, j], up[:, j], left[:, j] = f0, u0, sign * half_width
            for name, length, angle in limbs:  # each limb hangs from the previous joint, swung by angle
                k = i(f"{side}_{name}")
                fwd[:, k] = fwd[:, j] + length * np.sin(angle)
                up[:, k] = up[:, j] - length * np.cos(angle)
                left[:, k] = left[:, j]
                j = k
    head_f, head_u = neck_f + 0.02, neck_u + 0.5 * tr["head"] + 0.05
    for name, (df, du, dl) in {"nose": (0.5, 0.0, 0.0), "left_eye": (0.42, 0.12, 0.15),
                               "right_eye": (0.42, 0.12, -0.15), "left_ear": (0.0, 0.05, 0.45),
                               "right_ear": (0.0, 0.05, -0.45)}.items():
        fwd[:, i(name)] = head_f + df * tr["head"]
        up[:, i(name)] = head_u + du * tr["head"]
        left[:, i(name)] = dl * tr["head"]

    # Turn to the view angle (0 = walking towards the camera, 90 = left to right) and project.
    theta = np.deg2rad(np.repeat(walks.view_deg, n)).astype(f32)[:, None]
    sin, cos = np.sin(theta), np.cos(theta)
    fwd += walked[:, None]
    x = fwd * sin + left * cos
    depth = camera.distance - fwd * cos + left * sin
    focal = f32(camera.px_per_m * camera.distance)
    sigma = (noise_px * np.where(cl, f32(2.0), f32(1.0)))[:, None]
    out = np.empty((rows, 17, 3), dtype=f32)
    nx = rng.standard_normal((rows, 17), dtype=f32) * sigma
    ny = rng.standard_normal((rows, 17), dtype=f32) * sigma
    out[..., 0] = camera.width / 2 + focal * x / depth + nx
    out[..., 1] = camera.height * 0.55 - focal * (up - camera.eye_height) / depth + ny
    conf = rng.normal(0.85, 0.08, (rows, 17)).astype(f32) - 0.05 * (np.abs(nx) + np.abs(ny)) / max(noise_px, 1e-6)
    out[..., 2] = np.clip(conf, 0.05, 1.0)
    return out


def _walks(n_subjects: int, views: tuple[int, ...], conditions: dict[str, int], frames: int, rng) -> tuple[Walks, np.ndarray]:
    """All (subject, condition, seq, view) walks in CASIA-B's sorted path order, and their seq numbers."""
    rows = [(s, c, q, v) for s in range(1, n_subjects + 1) for c in sorted(conditions)
            for q in range(1, conditions[c] + 1) for v in views]
    subject, condition, seq, view = (np.array(col) for col in zip(*rows))
    n_frames = rng.integers(int(frames * 0.8), int(frames * 1.2) + 1, len(rows))
    return Walks(subject, view, condition, n_frames), seq


def generate_casia_b(
    out_path: str | Path,
    n_subjects: int = 124,
    n_views: int = 11,
    frames: int = 100,
    conditions: dict[str, int] | None = None,
    drop_prob: float = 0.03,
    noise_px: float = 1.0,
    seed: int = 0,
) -> Path:
    """Write a CASIA-B-format pose CSV (``casia-b_pose_coco.csv`` layout) and return its path.

    ``n_views`` takes the first views of 000, 018, ..., 180; ``conditions`` maps condition to its
    number of sequences (default nm 6, bg 2, cl 2); ``frames`` is the mean walk length (+-20 %)
    before ``drop_prob`` of the frames are dropped. Full scale (the defaults) is ~1.36 M rows.
    """
    out_path = Path(out_path)
    rng = np.random.default_rng([seed, 3])
    walks, seq = _walks(n_subjects, CASIA_B_VIEWS[:n_views], conditions or CASIA_B_CONDITIONS, frames, rng)
    poses = render(walks, subject_traits(n_subjects, seed), CASIA_B_CAMERA, noise_px, seed)
    n = walks.n_frames
    first = np.repeat(rng.integers(1, 30, len(n)), n)
    frame_no = first + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    keep = rng.random(n.sum()) >= drop_prob
    folders = np.array([f"./{s:03d}-{c}-{q:02d}-{v:03d}/" for s, c, q, v in
                        zip(walks.subject, walks.condition, seq, walks.view_deg)])
    names = np.char.add(np.repeat(folders, n)[keep], np.char.add(np.char.zfill(frame_no[keep].astype(str), 6), ".jpg"))
    header = ",".join(casia_b.COLUMNS)
    atomic_write(out_path, lambda tmp: _write_csv(tmp, header, names, poses[keep].reshape(-1, 51)))
    log.info("wrote %s: %d sequences, %d rows", out_path, len(n), int(keep.sum()))
    return out_path


def _write_csv(path: Path, header: str, names: np.ndarray, values: np.ndarray, chunk: int = 100_000) -> None:
    with open(path, "wb") as f:
        f.write(header.encode() + b"\n")
        for a in range(0, len(names), chunk):
            f.write(format_rows(names[a:a + chunk], values[a:a + chunk]))


def format_rows(names: np.ndarray, values: np.ndarray) -> bytes:
    """CSV lines ``name,v1,...,vK`` with values to 3 decimals, formatted in numpy.

    Python-level float formatting (``to_csv``, ``%``) takes 15-60 s for CASIA-B's 70 M values;
    this fills fixed-width ASCII digit columns and squeezes out the padding bytes instead.
    """
    q = np.rint(np.abs(values.astype(np.float64)) * 1000).astype(np.int32)  # exact for float32 input
    if q.size and q.max() >= 10_000_000:
        raise ValueError("format_rows handles |values| < 10000")
    ip, fp = np.divmod(q, 1000)
    field = np.zeros(values.shape + (10,), np.uint8)  # sign, 4 integer digits, ".", 3 decimals, ","
    field[..., 0] = np.where((values < 0) & (q > 0), ord("-"), 0)
    rest = ip
    for k in (4, 3, 2, 1):
        rest, digit = np.divmod(rest, 10)
        shown = (ip >= 10 ** (4 - k)) if k < 4 else True
        field[..., k] = np.where(shown, digit + ord("0"), 0)
    field[..., 5] = ord(".")
    rest = fp
    for k in (8, 7, 6):
        rest, digit = np.divmod(rest, 10)
        field[..., k] = digit + ord("0")
    field[..., 9] = ord(",")
    field[:, -1, 9] = ord("\n")
    name_bytes = np.frombuffer(np.char.add(names.astype("S"), b",").tobytes(), np.uint8).reshape(len(names), -1)
    line = np.concatenate([name_bytes, field.reshape(len(names), -1)], axis=1)
    return line[line != 0].tobytes()


def generate_oumvlp(
    root: str | Path,
    n_subjects: int = 20,
    n_views: int = 14,
    frames: int = 30,
    sources: tuple[str, ...] = ("openpose", "alphapose"),
    test_fraction: float = 0.5,
    empty_prob: float = 0.03,
    multi_person_prob: float = 0.05,
    noise_px: float = 3.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write an OUMVLP-Pose-format tree under ``root`` and return ``root``.

    ``<root>/<source>/<subject:05d>/<view:03d>_<seq:02d>/<frame>_keypoints.json`` with 18 OpenPose
    joints per person (frame names: ``0021_keypoints.json`` for alphapose,
    ``<subject>_<view>_<seq>_000000000021_keypoints.json`` for openpose), plus ``ID_list.csv``.
    Some frames list nobody, some a bystander listed first (``people[0]`` is not the walker).
    """
    root = Path(root)
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
    rng = np.random.default_rng([seed, 4])
    views = OUMVLP_VIEWS[:n_views]
    walks, seq = _walks(n_subjects, views, {"nm": 2}, frames, rng)
    poses = render(walks, subject_traits(n_subjects, seed), OUMVLP_CAMERA, noise_px, seed)
    op18 = np.empty((len(poses), 18, 3), dtype=np.float32)
    for k, c in enumerate(_COCO_FOR_OPENPOSE18):
        op18[:, k] = poses[:, c] if c >= 0 else (poses[:, 5] + poses[:, 6]) / 2
    offsets = np.concatenate([[0], np.cumsum(walks.n_frames)])
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent if root.parent.exists() else None))
    for s in range(len(walks.n_frames)):
        subject, view, q = int(walks.subject[s]), int(walks.view_deg[s]), int(seq[s]) - 1
        for source in sources:
            folder = tmp / source / f"{subject:05d}" / f"{view:03d}_{q:02d}"
            folder.mkdir(parents=True)
            for t in range(walks.n_frames[s]):
                pose = op18[offsets[s] + t].copy()
                u = rng.random()
                if u < empty_prob:
                    people = []
                else:
                    pose[rng.random(18) < 0.02] = 0.0  # joints OpenPose did not find
                    people = [_person(pose)]
                    if u > 1 - multi_person_prob:
                        people.insert(0, _person(_bystander(pose, rng)))
                name = (f"{t:04d}_keypoints.json" if source == "alphapose"
                        else f"{subject:05d}_{view:03d}_{q:02d}_{t:012d}_keypoints.json")
                (folder / name).write_text(json.dumps({"version": 1.3, "people": people}))
    ids = np.arange(1, n_subjects + 1)
    test = np.sort(rng.choice(ids, int(round(n_subjects * test_fraction)), replace=False))
    train = np.setdiff1d(ids, test)
    lines = ["train,test"] + [
        f"{train[i] if i < len(train) else ''},{test[i] if i < len(test) else ''}" for i in range(max(len(train), len(test)))
    ]
    (tmp / "ID_list.csv").write_text("\n".join(lines) + "\n")
    os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
    if root.exists():
        shutil.rmtree(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, root)
    log.info("wrote %s: %d sequences per source", root, len(walks.n_frames))
    return root


def _person(pose: np.ndarray) -> dict:
    return {"person_id": [-1], "pose_keypoints_2d": [round(float(v), 3) for v in pose.ravel()],
            "face_keypoints_2d": [], "hand_left_keypoints_2d": [], "hand_right_keypoints_2d": []}


def _bystander(pose: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smaller, fainter person standing near the image corner."""
    other = pose.copy()
    centre = pose[:, :2].mean(axis=0)
    other[:, :2] = (pose[:, :2] - centre) * 0.4 + np.array([120.0, 150.0]) + rng.normal(0, 2, 2)
    other[:, 2] *= 0.6
    return other


@entry("synthetic")
def main(cfg: DictConfig) -> None:
    """Generate the synthetic sets chosen by ``cfg.format`` (casia_b, oumvlp or both)."""
    if cfg.format not in ("casia_b", "oumvlp", "both"):
        raise ConfigError("format", cfg.format, "casia_b, oumvlp or both")
    out = Path(cfg.out_dir)
    if cfg.format in ("casia_b", "both"):
        path = generate_casia_b(out / "casia-b" / "casia-b_pose_coco.csv", seed=cfg.seed, **cfg.casia_b)
        print(f"CASIA-B format: {path}")
    if cfg.format in ("oumvlp", "both"):
        root = generate_oumvlp(out / "oumvlp", seed=cfg.seed, overwrite=True, **cfg.oumvlp)
        print(f"OUMVLP-Pose format: {root}")


if __name__ == "__main__":
    main()
