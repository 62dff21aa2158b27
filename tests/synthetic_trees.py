"""Tiny synthetic data in every public layout the platform reads, for in-process runs of whole recipes.

One tree per format (a few subjects, short walks), written by :mod:`gaitgraph.data.synthetic` into one data
folder that ``paths.data_dir`` points at; the embedded PsyMo-10 subset is linked in beside them. What the
recipes' own numbers cannot fit on so few subjects (subject lists, held-out counts, batch sizes, P x K) is overridden by
:func:`fitting`, and nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gaitgraph import ROOT
from gaitgraph.data import synthetic

#: Per dataset option: the split of the tiny tree (CASIA-B-shaped sets list their 6 subjects; OUMVLP, GREW and
#: Gait3D take theirs from their split files and hold the last training ids out), in-process readers.
FIT = {
    "casia_b": [
        "dataset.split.train_subjects=[1,2,3]",
        "dataset.split.val_subjects=[4]",
        "dataset.split.test_subjects=[5,6]",
    ],
    "casia_b_pkl": [
        "dataset.split.train_subjects=[1,2,3]",
        "dataset.split.val_subjects=[4]",
        "dataset.split.test_subjects=[5,6]",
    ],
    "synthetic": [
        "dataset.split.train_subjects=[1,2,3]",
        "dataset.split.val_subjects=[4]",
        "dataset.split.test_subjects=[5,6]",
    ],
    "psymo10": [
        "dataset.split.train_subjects=[0,1,2]",
        "dataset.split.val_subjects=[4]",
        "dataset.split.test_subjects=[6,7]",
    ],
    # Batches of 8: OUMVLP trains on 2 subjects x 2 views x 2 walks, GREW on 4 ids of 2-3 walks (a batch larger than
    # the training split is a config error).
    "oumvlp": ["dataset.split.val_count=1", "dataset.reader.workers=0", "trainer.batch_size=8"],
    "grew": ["dataset.split.val_count=2", "dataset.reader.workers=0", "trainer.batch_size=8"],
    "gait3d": ["dataset.split.val_count=2", "dataset.reader.workers=0"],
}
#: Two subjects of four sequences per P x K batch: the tiny trees train on three subjects.
PK = ["trainer.pk.p=2", "trainer.pk.k=4"]
#: Channel-width lists of the zoo's model configs (ResGCN's widths are fixed by its structure).
WIDTHS = ("in_channels", "input_branch", "main_stream")
#: BNNeck classes for the tiny trees (GPGait-CASIA-B's 74 hold every tiny training split): GPGait-OUMVLP's 5153
#: make an 80 MB head, most of its run's time in checkpoint writes.
CLASSES = 74


def write_trees(data_dir: Path) -> Path:
    """Write every format's tiny tree under ``data_dir`` (the layout ``paths.data_dir`` expects); return it."""
    small = {"n_views": 2, "frames": 24, "conditions": {"nm": 6, "bg": 1, "cl": 1}}
    synthetic.generate_casia_b(data_dir / "casia-b" / "casia-b_pose_coco.csv", n_subjects=6, **small)
    synthetic.generate_casia_b_pkl(data_dir / "casia-b-pkl", n_subjects=6, **small)
    synthetic.generate_oumvlp(data_dir / "oumvlp", n_subjects=6, n_views=2, frames=20)
    synthetic.generate_grew(data_dir / "grew", n_train=6, n_test=3, train_seqs=(2, 3), frames=24)
    synthetic.generate_gait3d(data_dir / "gait3d", n_subjects=12, frames=24)
    (data_dir / "psymo10").symlink_to(ROOT / "data" / "psymo10")
    return data_dir


def narrow(model_cfg: Any) -> list[str]:
    """Overrides that cut a zoo model's channel widths to about a quarter, in multiples of 32 (input channels kept;
    GaitTR's blocks take multiples of 32), and its classes to :data:`CLASSES`: the same network code on tiny
    tensors. The full widths are built on the meta device by tests/test_preflight.py."""
    out = []
    for key in WIDTHS:
        widths = model_cfg.get(key)
        if widths is not None:
            keep = key != "main_stream"  # in_channels[0] and input_branch[0]: channels of the input features
            new = [w if i == 0 and keep else max(32, w // 128 * 32) for i, w in enumerate(widths)]  # GaitTR: 32s
            out.append(f"model.{key}=[{','.join(map(str, new))}]")
    if model_cfg.get("num_classes", 0) > CLASSES:
        out.append(f"model.num_classes={CLASSES}")
    return out


def fitting(dataset: str, data_dir: Path) -> list[str]:
    """Overrides that fit dataset option ``dataset``'s recipe to the tiny trees under ``data_dir``."""
    root = [f"dataset.reader.root={data_dir / 'casia-b'}"] if dataset == "synthetic" else []
    return [f"paths.data_dir={data_dir}", *root, *FIT[dataset], *PK]
