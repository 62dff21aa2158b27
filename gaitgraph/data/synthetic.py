"""Synthetic gait data in every public format the platform reads (docs/formats.md#synthetic-generator):
the CASIA-B CSV, the OUMVLP-Pose folder of frame JSONs, and the pose pickles of CASIA-B-Pose, GREW (after
FastPoseGait's rearrangement) and Gait3D (docs/formats-pkl.md), each with its split files. The walkers
come from :mod:`gaitgraph.data.walker`; randomly dropped frames (gaps), empty frames and bystanders mimic a
pose estimator.

Run ``python -m gaitgraph.data.synthetic format=...`` (config ``conf/synthetic.yaml``), or call the
``generate_*`` functions. Folder trees are written beside their final place and renamed into it whole.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from gaitgraph.cli import entry
from gaitgraph.data import casia_b, oumvlp
from gaitgraph.data.walker import (
    CASIA_B_CAMERA,
    OUMVLP_CAMERA,
    Camera,
    Walks,
    casia_b_sample,
    render,
    subject_traits,
    walk_table,
)
from gaitgraph.errors import ConfigError
from gaitgraph.skeletons import OPENPOSE18_JOINTS, OPENPOSE18_TO_COCO17
from gaitgraph.utils import atomic_write, current_umask

log = logging.getLogger(__name__)

FORMATS = ("casia_b", "oumvlp", "casia_b_pkl", "grew", "gait3d")
CASIA_B_VIEWS = tuple(int(v) for v in casia_b.VIEWS)
CASIA_B_CONDITIONS = {cond: len(seqs) for cond, seqs in casia_b.CONDITION_SEQS.items()}
OUMVLP_VIEWS = tuple(int(v) for v in oumvlp.VIEWS)
#: In-the-wild footage (GREW, Gait3D): a wide frame, walkers further away.
WILD_CAMERA = Camera(width=1920, height=1080, px_per_m=120.0, distance=12.0)
#: COCO-17 index per OpenPose-18 joint (the inverse of the field's conversion); -1 = neck (mid-shoulder).
_COCO_FOR_OPENPOSE18 = tuple(
    OPENPOSE18_TO_COCO17.index(j) if j in OPENPOSE18_TO_COCO17 else -1 for j in range(len(OPENPOSE18_JOINTS))
)
_ID_CHARS = np.array(list("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def _casia_b_walks(
    n_subjects: int,
    n_views: int,
    conditions: dict[str, int] | None,
    frames: int,
    drop_prob: float,
    noise_px: float,
    seed: int,
):
    """The walks both CASIA-B writers render (the CSV and the pickles hold the same poses)."""
    views, chosen = CASIA_B_VIEWS[:n_views], conditions or CASIA_B_CONDITIONS
    return casia_b_sample(n_subjects, views, chosen, frames, drop_prob, noise_px, CASIA_B_CAMERA, seed)


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
    sample = _casia_b_walks(n_subjects, n_views, conditions, frames, drop_prob, noise_px, seed)
    folders = np.array(
        [
            f"./{s:03d}-{c}-{q:02d}-{v:03d}/"
            for s, c, q, v in zip(sample.subject, sample.condition, sample.seq, sample.view_deg)
        ]
    )
    frame_names = np.char.add(np.char.zfill(sample.frame_no.astype(str), 6), ".jpg")
    names = np.char.add(np.repeat(folders, sample.n_kept), frame_names)
    header = ",".join(casia_b.COLUMNS)
    atomic_write(out_path, lambda tmp: _write_csv(tmp, header, names, sample.poses.reshape(-1, 51)))
    log.info("wrote %s: %d sequences, %d rows", out_path, len(folders), len(names))
    return out_path


def _write_csv(path: Path, header: str, names: np.ndarray, values: np.ndarray, chunk: int = 100_000) -> None:
    with open(path, "wb") as f:
        f.write(header.encode() + b"\n")
        for a in range(0, len(names), chunk):
            f.write(format_rows(names[a : a + chunk], values[a : a + chunk]))


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
    n_views: int = 4,
    frames: int = 80,
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
    Some frames list nobody, some a bystander listed first (``people[0]`` is not the walker). The defaults
    (20 subjects x 4 views x 2 walks of 64-96 frames, ~25,600 files) hold the recipes' windows (up to 60 frames);
    their 200 validation ids do not fit (conf/synthetic.yaml names the overrides that do).
    """
    rng = np.random.default_rng([seed, 4])
    views = OUMVLP_VIEWS[:n_views]
    walks, seq = walk_table(n_subjects, views, {"nm": 2}, frames, rng)
    poses = render(walks, subject_traits(n_subjects, seed), OUMVLP_CAMERA, noise_px, seed)
    op18 = np.empty((len(poses), 18, 3), dtype=np.float32)
    for k, c in enumerate(_COCO_FOR_OPENPOSE18):
        op18[:, k] = poses[:, c] if c >= 0 else (poses[:, 5] + poses[:, 6]) / 2
    offsets = np.concatenate([[0], np.cumsum(walks.n_frames)])
    with new_tree(root, overwrite) as tmp:
        _write_oumvlp(tmp, walks, seq, op18, offsets, sources, empty_prob, multi_person_prob, rng)
        _write_id_list(tmp / "ID_list.csv", n_subjects, test_fraction, rng)
    log.info("wrote %s: %d sequences per source", root, len(walks.n_frames))
    return Path(root)


def _write_oumvlp(
    tmp: Path,
    walks: Walks,
    seq: np.ndarray,
    op18: np.ndarray,
    offsets: np.ndarray,
    sources: tuple[str, ...],
    empty_prob: float,
    multi_person_prob: float,
    rng,
) -> None:
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
                name = (
                    f"{t:04d}_keypoints.json"
                    if source == "alphapose"
                    else f"{subject:05d}_{view:03d}_{q:02d}_{t:012d}_keypoints.json"
                )
                (folder / name).write_text(json.dumps({"version": 1.3, "people": people}))


def _write_id_list(path: Path, n_subjects: int, test_fraction: float, rng) -> None:
    ids = np.arange(1, n_subjects + 1)
    test = np.sort(rng.choice(ids, int(round(n_subjects * test_fraction)), replace=False))
    train = np.setdiff1d(ids, test)
    lines = ["train,test"] + [
        f"{train[i] if i < len(train) else ''},{test[i] if i < len(test) else ''}"
        for i in range(max(len(train), len(test)))
    ]
    path.write_text("\n".join(lines) + "\n")


@contextmanager
def new_tree(root: str | Path, overwrite: bool) -> Iterator[Path]:
    """A temporary folder beside ``root`` to fill; renamed to ``root`` (replacing it) when the block succeeds."""
    root = Path(root)
    if root.exists() and not overwrite:
        raise FileExistsError(f"{root} exists; pass overwrite=True to replace it")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~current_umask())  # mkdtemp creates 0700
        if root.exists():
            shutil.rmtree(root)
        os.replace(tmp, root)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def _person(pose: np.ndarray) -> dict:
    return {
        "person_id": [-1],
        "pose_keypoints_2d": [round(float(v), 3) for v in pose.ravel()],
        "face_keypoints_2d": [],
        "hand_left_keypoints_2d": [],
        "hand_right_keypoints_2d": [],
    }


def _bystander(pose: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smaller, fainter person standing near the image corner."""
    other = pose.copy()
    centre = pose[:, :2].mean(axis=0)
    other[:, :2] = (pose[:, :2] - centre) * 0.4 + np.array([120.0, 150.0]) + rng.normal(0, 2, 2)
    other[:, 2] *= 0.6
    return other


def generate_casia_b_pkl(
    root: str | Path,
    n_subjects: int = 124,
    n_views: int = 11,
    frames: int = 100,
    conditions: dict[str, int] | None = None,
    drop_prob: float = 0.03,
    noise_px: float = 1.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write a CASIA-B-Pose pickle tree: ``<subject>/<cond>-<seq>/<view>/<view>.pkl`` (+ ``mapping.txt``).

    The same walks as :func:`generate_casia_b` with the same arguments, values rounded to the CSV's three
    decimals, so both readers must give the same poses. ``CASIA-B.json`` splits 74/124 of the ids to training.
    """
    sample = _casia_b_walks(n_subjects, n_views, conditions, frames, drop_prob, noise_px, seed)
    q = np.rint(np.abs(sample.poses.astype(np.float64)) * 1000) / 1000
    values = np.split(np.copysign(q, sample.poses), np.cumsum(sample.n_kept)[:-1])
    frame_no = np.split(sample.frame_no, np.cumsum(sample.n_kept)[:-1])
    names = [
        f"{s:03d}/{c}-{k:02d}/{v:03d}"
        for s, c, k, v in zip(sample.subject, sample.condition, sample.seq, sample.view_deg)
    ]
    with new_tree(root, overwrite) as tmp:
        _write_pickles(tmp, names, values)
        for name, numbers in zip(names, frame_no):
            lines = (f"{t} {n:06d}.jpg" for t, n in enumerate(numbers))
            (tmp / name / "mapping.txt").write_text("\n".join(lines) + "\n")
        n_train = round(n_subjects * 74 / 124)
        _write_split(
            tmp / "CASIA-B.json",
            [f"{i:03d}" for i in range(1, n_train + 1)],
            [f"{i:03d}" for i in range(n_train + 1, n_subjects + 1)],
        )
    log.info("wrote %s: %d sequences", root, len(names))
    return Path(root)


def generate_grew(
    root: str | Path,
    n_train: int = 200,
    n_test: int = 10,
    train_seqs: tuple[int, int] = (2, 6),
    probes_per_subject: tuple[int, int] = (1, 2),
    frames: int = 75,
    noise_px: float = 2.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write GREW as FastPoseGait's rearrangement leaves it, with ``GREW.json``.

    Training ids ``<id:05d>train/00/<video>/`` (``train_seqs`` walks each); test ids ``<id:05d>/01/<video>/``
    and ``/02/`` (one walk each); probes ``probe/03/<video>/`` whose identity only the synthetic-only
    ``probe_truth.csv`` (video id, test id) records. Training and test ids are different people. The defaults
    (~800 training walks of 60-90 frames, 27 MB) hold the GREW recipe's batch of 768 and its 60-frame windows.
    """
    rng = np.random.default_rng([seed, 5])
    names, person = [], []
    for i in range(1, n_train + 1):
        for _ in range(rng.integers(train_seqs[0], train_seqs[1] + 1)):
            names.append(f"{i:05d}train/00/{_video_id(rng)}")
            person.append(i)
    truth = []
    for j in range(1, n_test + 1):
        names += [f"{j:05d}/01/{_video_id(rng)}", f"{j:05d}/02/{_video_id(rng)}"]
        person += [n_train + j] * 2
        for _ in range(rng.integers(probes_per_subject[0], probes_per_subject[1] + 1)):
            truth.append((_video_id(rng), j))
            names.append(f"probe/03/{truth[-1][0]}")
            person.append(n_train + j)
    with new_tree(root, overwrite) as tmp:
        _write_pickles(tmp, names, _wild_walks(np.array(person), frames, noise_px, seed, rng))
        _write_split(
            tmp / "GREW.json",
            [f"{i:05d}train" for i in range(1, n_train + 1)],
            [f"{j:05d}" for j in range(1, n_test + 1)] + ["probe"],
        )
        (tmp / "probe_truth.csv").write_text("videoId,subject\n" + "".join(f"{v},{j}\n" for v, j in truth))
    log.info("wrote %s: %d sequences", root, len(names))
    return Path(root)


def generate_gait3d(
    root: str | Path,
    n_subjects: int = 240,
    test_fraction: float = 0.25,
    cameras: tuple[int, int] = (2, 4),
    seqs_per_camera: tuple[int, int] = (1, 2),
    frames: int = 75,
    noise_px: float = 2.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write Gait3D's pose pickles, ``<id:04d>/camid<c>_videoid<v>/seq<k>/seq<k>.pkl``, with ``Gait3D.json``.

    Each subject walks past ``cameras`` cameras, ``seqs_per_camera`` times each; ``PROBE_SET`` holds one
    sequence of every test subject (``<id>-<camid_videoid>-<seq>``), the rest of theirs is gallery. The defaults
    (180 training ids, ~840 walks of 60-90 frames, 32 MB) hold the Gait3D recipe's batch of 768 and 60-frame windows.
    """
    rng = np.random.default_rng([seed, 6])
    names, person = [], []
    for p in range(n_subjects):
        for cam in np.sort(rng.choice(40, rng.integers(cameras[0], cameras[1] + 1), replace=False)):
            video = f"{p:04d}/camid{cam}_videoid{rng.integers(1, 4)}"
            for k in range(rng.integers(seqs_per_camera[0], seqs_per_camera[1] + 1)):
                names.append(f"{video}/seq{k}")
                person.append(p + 1)
    ids = [f"{p:04d}" for p in range(n_subjects)]
    test = sorted(rng.choice(ids, int(round(n_subjects * test_fraction)), replace=False).tolist())
    probes = [rng.choice([n for n in names if n.startswith(f"{t}/")]).replace("/", "-") for t in test]
    with new_tree(root, overwrite) as tmp:
        _write_pickles(tmp, names, _wild_walks(np.array(person), frames, noise_px, seed, rng))
        _write_split(tmp / "Gait3D.json", [i for i in ids if i not in test], test, PROBE_SET=probes)
    log.info("wrote %s: %d sequences", root, len(names))
    return Path(root)


def _video_id(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_ID_CHARS, 8))


def _wild_walks(person: np.ndarray, frames: int, noise_px: float, seed: int, rng) -> list[np.ndarray]:
    """One float64 walk per entry of ``person`` (1-based identities), each at a random angle to the camera."""
    n = rng.integers(int(frames * 0.8), int(frames * 1.2) + 1, len(person))
    walks = Walks(person, rng.uniform(0, 180, len(person)), np.full(len(person), "nm"), n)
    poses = render(walks, subject_traits(int(person.max()), seed), WILD_CAMERA, noise_px, seed)
    return np.split(poses.astype(np.float64), np.cumsum(n)[:-1])


def _write_pickles(tmp: Path, names: list[str], arrays: list[np.ndarray]) -> None:
    """``<name>/<last part of name>.pkl`` for each sequence, pickled as FastPoseGait's converters do."""
    for name, array in zip(names, arrays):
        folder = tmp / name
        folder.mkdir(parents=True)
        with open(folder / f"{folder.name}.pkl", "wb") as f:
            pickle.dump(array, f)


def _write_split(path: Path, train: list[str], test: list[str], **extra: list[str]) -> None:
    path.write_text(json.dumps({"TRAIN_SET": train, "TEST_SET": test, **extra}, indent=1))


@entry("synthetic")
def main(cfg: DictConfig) -> None:
    """Generate the synthetic set(s) chosen by ``cfg.format``: one of :data:`FORMATS`, ``both`` or ``all``."""
    chosen = {"both": ("casia_b", "oumvlp"), "all": FORMATS}.get(cfg.format, (cfg.format,))
    if not set(chosen) <= set(FORMATS):
        raise ConfigError("format", cfg.format, f"one of {', '.join(FORMATS)}, both or all")
    out = Path(cfg.out_dir)
    writers = {
        "casia_b": lambda: generate_casia_b(out / "casia-b" / "casia-b_pose_coco.csv", seed=cfg.seed, **cfg.casia_b),
        "oumvlp": lambda: generate_oumvlp(out / "oumvlp", seed=cfg.seed, overwrite=True, **cfg.oumvlp),
        "casia_b_pkl": lambda: generate_casia_b_pkl(
            out / "casia-b-pkl", seed=cfg.seed, overwrite=True, **cfg.casia_b_pkl
        ),
        "grew": lambda: generate_grew(out / "grew", seed=cfg.seed, overwrite=True, **cfg.grew),
        "gait3d": lambda: generate_gait3d(out / "gait3d", seed=cfg.seed, overwrite=True, **cfg.gait3d),
    }
    for name in chosen:
        print(f"{name}: {writers[name]()}")


if __name__ == "__main__":
    main()
