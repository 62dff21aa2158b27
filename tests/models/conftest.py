"""Skeletons composed from the real conf/keypoints files."""

import pytest
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.models import GaitModel, build_model
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


#: FastPoseGait zoo model option -> the keypoints option it is built on (its layout) in the tests.
ZOO = {
    "gaitgraph1": "coco17",
    "gaitgraph1_oumvlp": "alphapose",
    "gaittr": "coco17",
    "gaittr_oumvlp": "alphapose",
    "gpgait": "coco17",
    "gpgait_oumvlp": "alphapose_coco17",
}


def build_zoo(option: str) -> tuple[GaitModel, Skeleton]:
    """The zoo model ``option`` built from the real composed config, and its skeleton."""
    from tests.conftest import compose_train

    cfg = compose_train([f"model={option}", f"keypoints={ZOO[option]}"])
    skeleton = instantiate(cfg.keypoints)
    return build_model(cfg.model, skeleton), skeleton
