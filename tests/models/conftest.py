"""Skeletons composed from the real conf/keypoints files."""

from pathlib import Path

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.skeletons import Skeleton

CONF = CONF_DIR


def load_skeleton(name: str) -> Skeleton:
    return instantiate(OmegaConf.load(CONF / "keypoints" / f"{name}.yaml"))


@pytest.fixture(scope="session")
def coco17() -> Skeleton:
    return load_skeleton("coco17")


@pytest.fixture(scope="session")
def openpose18() -> Skeleton:
    return load_skeleton("openpose")
