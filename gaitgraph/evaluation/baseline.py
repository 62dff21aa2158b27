"""A learning-free reference point: nearest neighbour on the raw (preprocessed) pose window itself.

Each sequence becomes its test-time window (same reflect padding and centre crop as the model's input),
flattened to the x, y coordinates of every frame and joint. Confidences are NOT used (no weighting): the
baseline sees exactly the coordinates the model sees, nothing else. ``evaluate`` then L2-normalises the
vectors, so the baseline is "the most similar pose trajectory at the same frame positions".
"""

from __future__ import annotations

import numpy as np

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import center_windows

#: Sequences per chunk: bounds the temporary [chunk, L, J, 3] window array.
_CHUNK = 4096


def pose_baseline_features(poses: PoseSet, sequence_length: int) -> np.ndarray:
    """[S, L * J * 2] float32: the centre window's x, y per frame and joint, row i = ``poses.meta`` row i."""
    out = np.empty((len(poses), sequence_length * poses.num_joints * 2), dtype=np.float32)
    for start in range(0, len(poses), _CHUNK):
        idx = np.arange(start, min(start + _CHUNK, len(poses)))
        out[idx] = center_windows(poses, idx, sequence_length)[..., :2].reshape(len(idx), -1)
    return out
