"""A 3D stick walker that carries identity, rendered to pixel poses as a pose estimator would see them.

Every subject has its own limb lengths, stride, cadence, arm swing, posture lean and head size; gait is
sinusoidal (hip, knee, arm swing, vertical bob). Each walk is rotated about the vertical axis to the
camera's view angle and projected with a pinhole camera. Conditions: ``bg`` damps one arm's swing and
drops that shoulder, ``cl`` widens torso and hips and doubles the joint noise. Per-frame Gaussian pixel
noise and confidences in (0, 1] mimic a pose estimator. The format writers live in
:mod:`gaitgraph.data.synthetic`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitgraph.skeletons import COCO17_JOINTS

FPS = 25.0


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
    speed = 4 * tr["hip_height"] * np.sin(tr["hip_swing"]) * cadence  # two steps per cycle
    walked = speed * (t - np.repeat((n / FPS / 2).astype(f32), n))
    fwd, up, left = _body(tr, phase, bg, cl)
    fwd += walked[:, None]
    theta = np.deg2rad(np.repeat(walks.view_deg, n)).astype(f32)[:, None]
    return _project(fwd, up, left, theta, camera, noise_px * np.where(cl, f32(2.0), f32(1.0)), noise_px, rng)


def _body(tr: dict[str, np.ndarray], phase: np.ndarray, bg: np.ndarray, cl: np.ndarray) -> tuple[np.ndarray, ...]:
    """Body-frame joint positions in metres, one ``[rows, 17]`` array per axis: forward, up, left; the ground
    point below the pelvis is the origin."""
    f32 = np.float32
    rows = len(phase)
    leg = tr["hip_height"]
    thigh, shin = leg * tr["thigh_share"], leg * (1 - tr["thigh_share"])
    half_shoulder = tr["shoulder_width"] / 2 * np.where(cl, f32(1.2), f32(1.0))
    half_hip = tr["hip_width"] / 2 * np.where(cl, f32(1.25), f32(1.0))
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
            (
                "shoulder",
                neck_f,
                neck_u - drop,
                half_shoulder,
                (("elbow", tr["upper_arm"], swing), ("wrist", tr["forearm"], swing + elbow_bend)),
            ),
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
    for name, (df, du, dl) in {
        "nose": (0.5, 0.0, 0.0),
        "left_eye": (0.42, 0.12, 0.15),
        "right_eye": (0.42, 0.12, -0.15),
        "left_ear": (0.0, 0.05, 0.45),
        "right_ear": (0.0, 0.05, -0.45),
    }.items():
        fwd[:, i(name)] = head_f + df * tr["head"]
        up[:, i(name)] = head_u + du * tr["head"]
        left[:, i(name)] = dl * tr["head"]
    return fwd, up, left


def _project(
    fwd: np.ndarray,
    up: np.ndarray,
    left: np.ndarray,
    theta: np.ndarray,
    camera: Camera,
    sigma: np.ndarray,
    noise_px: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Turn each row to its view angle ``theta`` (0 = towards the camera, 90 = left to right), project, add pixel
    noise of std ``sigma`` per row and confidences that drop with the noise drawn."""
    f32 = np.float32
    rows = len(fwd)
    sin, cos = np.sin(theta), np.cos(theta)
    x = fwd * sin + left * cos
    depth = camera.distance - fwd * cos + left * sin
    focal = f32(camera.px_per_m * camera.distance)
    sigma = sigma[:, None]
    out = np.empty((rows, 17, 3), dtype=f32)
    nx = rng.standard_normal((rows, 17), dtype=f32) * sigma
    ny = rng.standard_normal((rows, 17), dtype=f32) * sigma
    out[..., 0] = camera.width / 2 + focal * x / depth + nx
    out[..., 1] = camera.height * 0.55 - focal * (up - camera.eye_height) / depth + ny
    conf = rng.normal(0.85, 0.08, (rows, 17)).astype(f32) - 0.05 * (np.abs(nx) + np.abs(ny)) / max(noise_px, 1e-6)
    out[..., 2] = np.clip(conf, 0.05, 1.0)
    return out


def walk_table(
    n_subjects: int, views: tuple[int, ...], conditions: dict[str, int], frames: int, rng: np.random.Generator
) -> tuple[Walks, np.ndarray]:
    """All (subject, condition, seq, view) walks in CASIA-B's sorted path order, and their seq numbers."""
    rows = [
        (s, c, q, v)
        for s in range(1, n_subjects + 1)
        for c in sorted(conditions)
        for q in range(1, conditions[c] + 1)
        for v in views
    ]
    subject, condition, seq, view = (np.array(col) for col in zip(*rows))
    n_frames = rng.integers(int(frames * 0.8), int(frames * 1.2) + 1, len(rows))
    return Walks(subject, view, condition, n_frames), seq


@dataclass
class CasiaBSample:
    """CASIA-B-shaped walks as a pose estimator delivers them: frames dropped, numbers with gaps.

    Per sequence (length S, CASIA-B's sorted path order): subject, condition, seq, view_deg, n_kept.
    Per kept frame (all sequences back to back): poses ``[F, 17, 3]`` and frame_no.
    """

    subject: np.ndarray
    condition: np.ndarray
    seq: np.ndarray
    view_deg: np.ndarray
    n_kept: np.ndarray
    poses: np.ndarray
    frame_no: np.ndarray


def casia_b_sample(
    n_subjects: int,
    views: tuple[int, ...],
    conditions: dict[str, int],
    frames: int,
    drop_prob: float,
    noise_px: float,
    camera: Camera,
    seed: int,
) -> CasiaBSample:
    """Render every (subject, condition, seq, view) walk, then drop ``drop_prob`` of the frames at random."""
    rng = np.random.default_rng([seed, 3])
    walks, seq = walk_table(n_subjects, views, conditions, frames, rng)
    poses = render(walks, subject_traits(n_subjects, seed), camera, noise_px, seed)
    n = walks.n_frames
    first = np.repeat(rng.integers(1, 30, len(n)), n)
    frame_no = first + np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    keep = rng.random(n.sum()) >= drop_prob
    seq_of_row = np.repeat(np.arange(len(n)), n)
    n_kept = np.bincount(seq_of_row[keep], minlength=len(n))
    return CasiaBSample(walks.subject, walks.condition, seq, walks.view_deg, n_kept, poses[keep], frame_no[keep])
