"""Joint layouts (COCO-17, OpenPose-18) as carried by the ``keypoints`` config group.

The ground layer: readers, models, evaluation and the engine all describe poses with a :class:`Skeleton`, and
this module imports nothing of the platform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from gaitgraph.errors import ConfigError

#: COCO-17 joint order (CASIA-B HRNet release, PsyMo AlphaPose, the FastPoseGait/OpenGait pose pickles).
COCO17_JOINTS: tuple[str, ...] = (
    "nose",
    "left_eye",
    "right_eye",
    "left_ear",
    "right_ear",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)
#: OpenPose-18 joint order (both OUMVLP-Pose releases).
OPENPOSE18_JOINTS: tuple[str, ...] = (
    "nose",
    "neck",
    "right_shoulder",
    "right_elbow",
    "right_wrist",
    "left_shoulder",
    "left_elbow",
    "left_wrist",
    "right_hip",
    "right_knee",
    "right_ankle",
    "left_hip",
    "left_knee",
    "left_ankle",
    "right_eye",
    "left_eye",
    "right_ear",
    "left_ear",
)
#: OpenPose-18 index for each COCO-17 joint (the field's conversion, docs/formats.md#openpose-18-to-coco-17).
OPENPOSE18_TO_COCO17: tuple[int, ...] = (0, 15, 14, 17, 16, 5, 2, 6, 3, 7, 4, 11, 8, 12, 9, 13, 10)


@dataclass
class Skeleton:
    """One joint layout and where its poses come from.

    ``source`` names the pose estimator release a reader should pick (e.g. the OUMVLP-Pose
    ``openpose`` or ``alphapose`` folder); ``layout`` names the joint order the model sees;
    ``convert_from`` names the joint order of the pose files when it differs (one of
    :data:`CONVERSIONS`), converted once when the processed cache is built.
    """

    layout: str
    joints: list[str]
    links: list[list[int]]
    center: int
    connect_joint: list[int]
    flip_idx: list[int]
    parts: dict[str, list[int]]
    hips: list[int]
    shoulders: list[int]
    source: str | None = None
    extra_bone: list[int] = field(default_factory=list)
    convert_from: str | None = None

    def __post_init__(self) -> None:
        # Hydra hands over ListConfig/DictConfig; keep plain Python containers.
        self.joints = [str(j) for j in self.joints]
        self.links = [[int(a), int(b)] for a, b in self.links]
        self.connect_joint = [int(j) for j in self.connect_joint]
        self.flip_idx = [int(j) for j in self.flip_idx]
        self.parts = {str(k): [int(j) for j in v] for k, v in dict(self.parts).items()}
        self.hips = [int(j) for j in self.hips]
        self.shoulders = [int(j) for j in self.shoulders]
        self.extra_bone = [int(j) for j in self.extra_bone]
        n = len(self.joints)
        for name, idx in (("connect_joint", self.connect_joint), ("flip_idx", self.flip_idx)):
            if len(idx) != n:
                raise ConfigError(f"keypoints.{name}", idx, f"{n} entries, one per joint of layout '{self.layout}'")
        if sorted(self.flip_idx) != list(range(n)):
            raise ConfigError("keypoints.flip_idx", self.flip_idx, f"a permutation of 0..{n - 1}")
        if self.convert_from is not None:
            self.convert_from = str(self.convert_from)
            if (self.convert_from, self.layout) not in CONVERSIONS:
                known = ", ".join(f"{a} -> {b}" for a, b in CONVERSIONS)
                raise ConfigError(
                    "keypoints.convert_from",
                    self.convert_from,
                    f"a known conversion to '{self.layout}' ({known}), or null when the files are "
                    f"already '{self.layout}'",
                )

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    @property
    def file_layout(self) -> str:
        """The joint order of the pose files this skeleton reads (before any conversion)."""
        return self.convert_from or self.layout

    def convert(self, frames: np.ndarray) -> np.ndarray:
        """[..., J_file, C] poses in the files' order to [..., J, C] in this skeleton's order."""
        if self.convert_from is None:
            return frames
        return CONVERSIONS[(self.convert_from, self.layout)](frames)


def openpose18_to_coco17(frames: np.ndarray) -> np.ndarray:
    """Reorder [..., 18, C] OpenPose-18 poses into [..., 17, C] COCO-17 order (neck dropped)."""
    if frames.shape[-2] != 18:
        raise ValueError(f"expected 18 OpenPose joints on axis -2, found {frames.shape[-2]}")
    return frames[..., list(OPENPOSE18_TO_COCO17), :]


#: (file layout, model layout) -> joint conversion; what ``keypoints.convert_from`` may name.
CONVERSIONS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("openpose18", "coco17"): openpose18_to_coco17,
}
