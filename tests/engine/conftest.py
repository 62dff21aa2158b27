"""Small in-memory training data and the real COCO-17 skeleton for engine tests."""

from __future__ import annotations

import numpy as np

from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.transforms import Compose
from gaitgraph.skeletons import Skeleton
from gaitgraph.utils import build

from ..conftest import compose_train, skeleton


def gaitgraph2_augmentation() -> Compose:
    """The packaged ``augmentation=gaitgraph2`` pipeline, built on COCO-17 as a run builds it."""
    return build(compose_train([]).augmentation)


def coco17() -> Skeleton:
    return skeleton("coco17")


def toy_poses(subjects: int = 6, per_subject: tuple[int, ...] = (5,), seed: int = 0) -> PoseSet:
    """Random COCO-17 walks: subject s has ``per_subject[s % len(per_subject)]`` sequences of 12-30 frames."""
    rng = np.random.default_rng(seed)
    seqs, meta = [], []
    for s in range(subjects):
        for q in range(per_subject[s % len(per_subject)]):
            t = int(rng.integers(12, 31))
            xy = rng.normal(100.0 + 5 * s, 10.0, size=(t, 17, 2))
            seqs.append(np.concatenate([xy, rng.uniform(0.2, 1.0, size=(t, 17, 1))], axis=-1))
            meta.append({"subject": s, "condition": "nm", "seq": q, "view": "000", "source": "toy"})
    return PoseSet.from_sequences(seqs, meta)
