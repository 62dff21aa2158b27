"""Makefile targets: the reproduction recipes run the right command and stop at once without their data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hydra.utils import instantiate

from gaitgraph import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def _make(*args: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize(
    ("target", "experiment", "data_check"),
    [
        ("reproduce-casia-b", "gaitgraph2_casia_b", "casia-b/casia-b_pose_coco.csv"),
        ("reproduce-oumvlp-openpose", "gaitgraph2_oumvlp_openpose", "oumvlp/openpose"),
        ("reproduce-oumvlp-alphapose", "gaitgraph2_oumvlp_alphapose", "oumvlp/alphapose"),
        ("reproduce-grew", "gaitgraph2_grew", "grew/GREW.json"),
        ("reproduce-gait3d", "gaitgraph2_gait3d", "gait3d/Gait3D.json"),
    ],
)
def test_reproduce_targets_run_the_paper_experiment(target: str, experiment: str, data_check: str, tmp_path: Path):
    result = _make("-n", target, f"DATA_DIR={tmp_path}")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    train = [line for line in lines if "-m gaitgraph.train" in line]
    assert len(train) == 1, result.stdout
    assert f"experiment={experiment} tta=true paths.data_dir={tmp_path}" in train[0]
    check = next(i for i, line in enumerate(lines) if f"{tmp_path}/{data_check}" in line)
    assert check < lines.index(train[0]), "the dataset check must come before training"


def test_sweep_target_sweeps_then_compares_then_checks_seeds():
    result = _make("-n", "sweep", "SWEEP_DIR=/tmp/some-sweep")
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "gaitgraph.train" in line or "scripts/" in line]
    assert "-m gaitgraph.train -m hparams_search=optuna_small hydra.sweep.dir=/tmp/some-sweep" in lines[0]
    assert lines[1].endswith("scripts/compare_runs.py /tmp/some-sweep")
    assert lines[2].endswith("scripts/seed_check.py /tmp/some-sweep")


def test_sweep_dir_is_fixed_once_per_invocation():
    result = _make("-n", "sweep")
    dirs = {word.split("=", 1)[-1] for word in result.stdout.split() if "sweep_small-" in word}
    assert len(dirs) == 1, result.stdout  # the compare step reads the folder the sweep wrote


@pytest.mark.parametrize(
    ("target", "missing"),
    [
        ("reproduce-casia-b", "casia-b/casia-b_pose_coco.csv"),
        ("reproduce-oumvlp-openpose", "oumvlp/openpose"),
        ("reproduce-grew", "grew/GREW.json"),
        ("reproduce-gait3d", "gait3d/Gait3D.json"),
    ],
)
def test_missing_dataset_fails_fast_with_the_path_and_how_to_get_it(target: str, missing: str, tmp_path: Path):
    result = _make(target, f"DATA_DIR={tmp_path}", timeout=30)
    assert result.returncode != 0
    # It stops before anything else runs: no install step, no training.
    assert "-m venv" not in result.stdout and ".installed-stamp" not in result.stdout
    assert f"{tmp_path}/{missing}" in result.stderr
    how = {
        "casia": "GaitGraph release",
        "oumvlp": "not redistributable",
        "grew": "grew-benchmark.org",
        "gait3d": "gait3d.github.io",
    }
    assert next(text for key, text in how.items() if key in target) in result.stderr
    assert "gaitgraph.train" not in result.stdout, "training must not start"


def test_install_hands_pips_find_links_to_uv_and_falls_back_to_pip(tmp_path: Path):
    # -W: as if pyproject.toml had changed, so make prints the whole install recipe without running it.
    env = {**os.environ, "PIP_FIND_LINKS": str(tmp_path)}
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", "-W", "pyproject.toml", "install"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    uv = next(line for line in result.stdout.splitlines() if "/uv pip install" in line)
    assert f"--find-links {tmp_path}" in uv and "--no-compile" in uv
    # If uv fails, pip installs the same extras; either way compileall and pip check follow.
    assert uv.rstrip().endswith("\\") and "|| .venv/bin/pip" in result.stdout
    assert "compileall" in result.stdout and "pip check" in result.stdout


def test_help_lists_the_new_targets():
    result = _make("help")
    for target in (
        "sweep",
        "reproduce-casia-b",
        "reproduce-oumvlp-openpose",
        "reproduce-oumvlp-alphapose",
        "reproduce-grew",
        "reproduce-gait3d",
        "train",
        "test",
        "install",
        "clean-cache",
    ):
        assert f"  {target} " in result.stdout, target


def test_experiment_configs_hold_the_paper_recipes():
    from .conftest import compose_train

    casia = compose_train(["experiment=gaitgraph2_casia_b"])
    assert (casia.dataset.name, casia.model.structure, casia.model.reduction) == ("casia_b", [1, 1, 1, 1], 8)
    assert (casia.trainer.epochs, casia.trainer.batch_size, casia.dataset.sequence_length) == (200, 768, 60)
    assert casia.optimizer.optimizer._target_ == "torch.optim.AdamW"
    assert (casia.optimizer.optimizer.lr, casia.optimizer.optimizer.weight_decay) == (5e-3, 1e-5)
    assert casia.loss.temperature == 0.01 and casia.tta is True
    assert list(casia.dataset.split.train_subjects) == list(range(1, 75)) and not casia.dataset.split.val_subjects
    for keypoints in ("openpose", "alphapose"):
        oumvlp = compose_train([f"experiment=gaitgraph2_oumvlp_{keypoints}"])
        assert (oumvlp.dataset.name, oumvlp.keypoints.source) == ("oumvlp", keypoints)
        assert (oumvlp.model.structure, oumvlp.model.reduction) == ([1, 2, 3, 3], 4)
        assert (oumvlp.trainer.epochs, oumvlp.trainer.batch_size, oumvlp.dataset.sequence_length) == (750, 768, 30)
        assert oumvlp.optimizer.optimizer._target_ == "torch.optim.Adam" and oumvlp.optimizer.optimizer.lr == 5e-3
        assert oumvlp.trainer.swa.enabled and oumvlp.trainer.swa.start_fraction == 0.8
        assert oumvlp.loss.temperature == 0.01 and oumvlp.tta is True


def test_experiment_configs_hold_fastposegaits_recipes():
    from .conftest import compose_train

    grew = compose_train(["experiment=gaitgraph2_grew"])
    assert (grew.dataset.name, grew.model.structure, grew.model.reduction) == ("grew", [1, 2, 3, 3], 4)
    assert (grew.trainer.epochs, grew.trainer.batch_size, grew.dataset.sequence_length) == (373, 768, 60)
    assert grew.optimizer.optimizer._target_ == "torch.optim.Adam" and grew.optimizer.scheduler.three_phase is True
    assert (grew.optimizer.optimizer.lr, grew.optimizer.optimizer.weight_decay) == (5e-3, 1e-5)
    gait3d = compose_train(["experiment=gaitgraph2_gait3d"])
    assert (gait3d.dataset.name, gait3d.model.structure, gait3d.model.reduction) == ("gait3d", [1, 1, 1, 1], 8)
    assert (gait3d.trainer.epochs, gait3d.trainer.batch_size, gait3d.dataset.sequence_length) == (80, 768, 60)
    assert gait3d.optimizer.optimizer._target_ == "torch.optim.AdamW"
    for cfg in (grew, gait3d):
        assert cfg.loss.temperature == 0.01 and cfg.tta is True and cfg.dataset.split.val_count == 0
        transforms = cfg.augmentation.transforms
        assert list(transforms) == ["flip_sequence", "flip_lr", "joint_noise", "point_noise", "random_move"]
        assert (transforms.flip_sequence.p, transforms.flip_lr.p) == (0.5, 0.1)
        assert (transforms.joint_noise.amplitude, transforms.point_noise.amplitude) == (0.25, 0.05)
        assert (transforms.random_move.max_dx, transforms.random_move.max_dy) == (4.0, 1.0)
        # The pipeline builds (the flat keys of an older class once reached Compose and crashed after loading).
        assert len(instantiate(cfg.augmentation).transforms) == 5
        assert cfg.metric_protocol == cfg.dataset.name


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from .synthetic_trees import write_trees

    return write_trees(tmp_path_factory.mktemp("data"))


@pytest.mark.slow
@pytest.mark.parametrize(("target", "dataset"), [("reproduce-grew", "grew"), ("reproduce-gait3d", "gait3d")])
def test_reproduce_target_runs_end_to_end_on_the_public_layout(target: str, dataset: str, trees: Path, tmp_path: Path):
    """The target's dataset check accepts a synthetic tree in the public layout, and the exact training command
    it runs (read with ``make -n``) trains and scores in process, with debug=fdr's budget and the tree's split."""
    from omegaconf import OmegaConf, open_dict

    from gaitgraph.train import train

    from .conftest import compose_train
    from .synthetic_trees import fitting

    check = _make(f"check-{dataset}-data", f"DATA_DIR={trees}")
    assert check.returncode == 0, check.stderr
    line = next(ln for ln in _make("-n", target, f"DATA_DIR={trees}").stdout.splitlines() if "-m gaitgraph.train" in ln)
    overrides = line.split("-m gaitgraph.train", 1)[1].split()
    assert f"paths.data_dir={trees}" in overrides
    cfg = compose_train([*overrides, "debug=fdr", "baseline=false", f"paths.cache_dir={tmp_path / 'cache'}"])
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(fitting(dataset, trees)))
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    train(cfg)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["tta"] is True and metrics["metric_protocol"] == dataset
    assert 0.0 <= metrics["test"][dataset]["mean_rank1"] <= 100.0 and metrics["test"][dataset]["n_scored"] > 0
