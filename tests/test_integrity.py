"""Experiment integrity, one test per finding of the integrity review, each through the real command line:
nothing tunes on the test split, no run is lost or silently changed, weights load safely, memory is checked,
bad configuration is refused before any work, and every mistake ends in one paragraph without a traceback.

The Hydra apps run in this process (:func:`tests.conftest.run_app`: the same main, exit status and output); a
full disk is a file-size limit on a process of its own, which ends with ``os._exit``: a new interpreter where its
exit after a failed HDF5 write is what is tested (the cache), a forked one (tests/forked.py) for the checkpoint."""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate

from gaitgraph import ROOT
from gaitgraph.data.cache import load_poses
from gaitgraph.engine.checkpoint import non_finite_keys

from .conftest import AppResult, TrainedRun, compose_train, run_app
from .forked import Exited, fork_app
from .payload import CodePayload

# 192 PsyMo-10 training sequences / 32 = 6 steps per epoch.
TINY = [
    "dataset.sequence_length=16",
    "trainer.batch_size=32",
    "trainer.epochs=1",
    "logger=none",
    "baseline=false",
    "trainer.device=cpu",
    "trainer.num_threads=1",
    "trainer.deterministic=true",
]
USAGE_EXIT = 2


def gaitgraph(
    module: str, args: list[str], tmp: Path, limit_file_bytes: int | None = None
) -> subprocess.CompletedProcess:
    """Run ``python -m gaitgraph.<module> args`` from ``tmp``, with the repository importable (test hooks)."""
    env = {**os.environ, "WANDB_MODE": "offline", "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}

    def limit() -> None:
        if limit_file_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_file_bytes, limit_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", f"gaitgraph.{module}", *args],
        cwd=tmp,
        env=env,
        text=True,
        capture_output=True,
        timeout=300,
        preexec_fn=limit,
    )


#: The file-size limit (bytes) of the child :func:`fork_with_file_limit` is forking, empty between its forks.
_CHILD_FILE_LIMIT: list[int] = []


def _limit_child_files() -> None:
    if _CHILD_FILE_LIMIT:
        resource.setrlimit(resource.RLIMIT_FSIZE, (_CHILD_FILE_LIMIT[0], _CHILD_FILE_LIMIT[0]))


os.register_at_fork(after_in_child=_limit_child_files)


def fork_with_file_limit(module: str, args: list[str], tmp: Path, limit_file_bytes: int) -> Exited:
    """:func:`gaitgraph` in a forked child (torch and the platform already imported, about 4 CPU-s less than a new
    interpreter) whose file-size limit is set in the child only: this process's own writes are never limited."""
    _CHILD_FILE_LIMIT.append(limit_file_bytes)
    try:
        return fork_app(f"gaitgraph.{module}", args, tmp / "logs", cwd=tmp, env={"HYDRA_FULL_ERROR": "0"})
    finally:
        _CHILD_FILE_LIMIT.clear()


def train_args(tmp: Path, run: str, *extra: str, cache: Path | None = None) -> list[str]:
    cache = cache or tmp / "cache"
    return [*TINY, f"hydra.run.dir={tmp / run}", f"paths.output_root={tmp}", f"paths.cache_dir={cache}", *extra]


def train_app(args: list[str]) -> AppResult:
    """``python -m gaitgraph.train args``, in this process."""
    return run_app("gaitgraph.train", args)


def one_paragraph(result: subprocess.CompletedProcess | AppResult | Exited, kind: str, *phrases: str) -> str:
    """The run failed as a user mistake: exit 2, one short message of ``kind`` naming ``phrases``, no traceback."""
    text = result.stdout + result.stderr
    assert result.returncode == USAGE_EXIT, text[-3000:]
    assert "Traceback" not in text and "Error executing job" not in text, text[-3000:]
    lines = result.stderr.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(f"{kind}: ")]
    assert len(starts) == 1, result.stderr[-3000:]
    paragraph = "\n".join(lines[starts[0] :])  # the message and its hint line, the last thing printed
    for phrase in phrases:
        assert phrase in paragraph, (phrase, paragraph)
    message = "\n".join(line for line in paragraph.splitlines() if not line.startswith("  resume with: "))
    assert len(message) < 800, f"messages stay short (a resume command is as long as the user's): {paragraph}"
    return paragraph


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def rerun_args(run: TrainedRun, run_dir: Path, *extra: str) -> list[str]:
    """The shared run's own command line, into ``run_dir``."""
    return [
        *run.overrides,
        f"hydra.run.dir={run_dir}",
        f"paths.output_root={run_dir.parent}",
        f"paths.cache_dir={run.cache}",
        *extra,
    ]


@pytest.mark.slow
def test_1_the_objective_is_validation_and_a_sweep_without_one_refuses(trained_run: TrainedRun, tmp_path: Path):
    metrics = trained_run.metrics
    protocol = metrics["metric_protocol"]
    assert metrics["metric_name"] == "val/rank1"
    assert metrics["metric"] == pytest.approx(metrics["val"][protocol]["mean_rank1"])
    assert metrics["chance"] == pytest.approx(0.5)  # two validation subjects
    storage = tmp_path / "optuna"
    result = train_app(
        [
            "-m",
            "hparams_search=optuna_small",
            *TINY,
            "dataset.split.val_subjects=[]",
            f"paths.output_root={tmp_path}",
            f"hparams_search.sqlite_path={storage}/s.db",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
    )
    one_paragraph(result, "config error", "optimized_metric=", "no validation subjects", "legacy_test/rank1")
    assert not storage.exists() and not (tmp_path / "sweep").exists(), "refused before any study or trial"


@pytest.mark.slow
def test_2_a_nan_step_stops_the_run_and_leaves_the_last_good_checkpoint(tmp_path: Path, shared_cache: Path):
    held = tmp_path / "step3.pt"  # the weights the run held after step 3, saved before the poison is applied
    poison = [
        "trainer.checkpoint_every_steps=1",
        "+callbacks.held._target_=tests.faults.hooks.SaveWeightsAtStep",
        "+callbacks.held.step=3",
        f"+callbacks.held.path={held}",
        "+callbacks.poison._target_=tests.engine.hooks.PoisonAtStep",
        "+callbacks.poison.step=3",
    ]
    result = train_app(train_args(tmp_path, "nan", *poison, cache=shared_cache))
    one_paragraph(
        result,
        "training diverged",
        "the training loss became nan at step 4",
        "last good checkpoint",
        "(step 3)",
        "trainer.resume=auto",
    )
    kept = torch.load(tmp_path / "nan" / "checkpoints" / "last.pt", weights_only=True)
    assert kept["step"] == 3 and non_finite_keys(kept["model"]) == []
    # Exactly the weights of step 3, before the poison.
    clean = torch.load(held, weights_only=True)
    assert kept["model"].keys() == clean.keys() and all(torch.equal(kept["model"][k], clean[k]) for k in clean)


@pytest.mark.slow
def test_3_a_rerun_into_a_used_directory_changes_nothing(trained_run: TrainedRun, tmp_path: Path):
    finished = trained_run.copy(tmp_path / "run")
    before = digest(finished)
    result = train_app(rerun_args(trained_run, finished))
    one_paragraph(result, "run directory in use", str(finished), "trainer.resume=auto", "trainer.overwrite=true")
    assert digest(finished) == before


def test_4_pretrained_weights_never_run_code(tmp_path: Path, shared_cache: Path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": CodePayload(marker)}, tmp_path / "evil.ckpt")
    result = train_app(train_args(tmp_path, "run", f"model.pretrained={tmp_path / 'evil.ckpt'}", cache=shared_cache))
    one_paragraph(result, "checkpoint error", "evil.ckpt")
    assert not marker.exists()


@pytest.mark.slow
def test_5_resume_is_exact_or_refuses(trained_run: TrainedRun, tmp_path: Path):
    finished = trained_run.copy(tmp_path / "run")
    # The refusal names every changed key (two trainer keys in one resume: one run less); a model change, whose
    # many keys would fill the message, on its own.
    for changed, keys in (
        (["trainer.batch_size=64", "trainer.epochs=3"], ["trainer.batch_size: 32 -> 64", "trainer.epochs: 10 -> 3"]),
        (["model=resgcn_n39_r8"], ["model.structure"]),
    ):
        before = digest(finished / "checkpoints")
        result = train_app(rerun_args(trained_run, finished, "trainer.resume=auto", *changed))
        one_paragraph(result, "checkpoint error", "cannot resume", *keys, "A finished run is not extended")
        assert digest(finished / "checkpoints") == before


def test_6_memory_is_estimated_before_training(tmp_path: Path, shared_cache: Path):
    limits = ["trainer.memory.limit_gb=0.01", "trainer.recompute=false"]
    result = train_app(train_args(tmp_path, "run", *limits, cache=shared_cache))
    one_paragraph(
        result,
        "not enough memory",
        "may need up to",
        "0.0 GB are free",
        "trainer.recompute=true",
        "trainer.batch_size",
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.epochs=0", "trainer.epochs=0: expected an integer >= 1"),
        ("trainer.batch_size=-4", "trainer.batch_size=-4: expected an integer >= 1"),
        ("trainer.devices=0", "trainer.devices=0: expected an integer >= 1"),
        ("+trainer.epoch=1", "trainer.epoch=1: expected a key of trainer: did you mean 'epochs'?"),
        ("augmentation.transforms.flip_lr.p=1.5", "augmentation.transforms.flip_lr.p=1.5: expected a probability"),
        ("optimized_metric=test/rank1", "optimized_metric='test/rank1': expected one of val/rank1"),
    ],
)
def test_8_bad_configuration_is_refused_before_any_data_is_read(tmp_path: Path, override: str, message: str):
    result = train_app(train_args(tmp_path, "run", override))
    one_paragraph(result, "config error", message)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


def test_8_a_type_error_fails_while_composing_and_a_window_longer_than_the_data_is_named(tmp_path: Path):
    typed = train_app(train_args(tmp_path, "run", "trainer.epochs=abc"))
    assert typed.returncode != 0 and "Traceback" not in typed.stderr and "trainer.epochs" in typed.stderr
    assert "could not be converted to Integer" in typed.stderr and not (tmp_path / "cache").exists()
    long = train_app(train_args(tmp_path, "run", "dataset.sequence_length=500"))
    # Counted from the files before the cache is built (data/recipe_check.py), with the window that fits.
    one_paragraph(long, "config error", "dataset.sequence_length=500: expected a recipe", "dataset.sequence_length=68")
    assert not (tmp_path / "cache").exists()


@pytest.mark.slow
def test_9_a_full_disk_during_a_cache_build_or_a_checkpoint_is_one_paragraph(tmp_path: Path, shared_cache: Path):
    # A file-size limit of 1.2 MB stands in for a full disk: the processed cache and a checkpoint are larger.
    cache = gaitgraph("train", train_args(tmp_path, "run"), tmp_path, limit_file_bytes=1_200_000)
    one_paragraph(cache, "disk full", "psymo10-", ".h5: the write failed for lack of space", "nothing was written")
    assert not list((tmp_path / "cache").glob("*.tmp")) and not list((tmp_path / "cache").glob("psymo10-[!r]*.h5"))
    # The checkpoint's turn: the session's cache, built here unless a test already did, is only read.
    cfg = compose_train([f"paths.cache_dir={shared_cache}"])
    load_poses(cfg.dataset, instantiate(cfg.keypoints), shared_cache)
    # The first checkpoint comes after the first step.
    first = train_args(tmp_path, "run", "trainer.checkpoint_every_steps=1", cache=shared_cache)
    result = fork_with_file_limit("train", first, tmp_path, limit_file_bytes=1_200_000)
    one_paragraph(result, "disk full", "checkpoints/", ".pt: the write failed for lack of space")
    assert not list((tmp_path / "run" / "checkpoints").glob("*.pt"))


def test_9_the_other_entry_points_report_without_traceback(tmp_path: Path):
    (tmp_path / "junk.pt").write_text("junk")
    paths = [f"paths.output_root={tmp_path}", f"paths.cache_dir={tmp_path / 'cache'}"]

    def app(module: str, *args: str) -> AppResult:
        return run_app(f"gaitgraph.{module}", list(args), cwd=tmp_path)

    one_paragraph(
        app("evaluate", f"ckpt_path={tmp_path / 'junk.pt'}", *paths),
        "checkpoint error",
        "junk.pt: not a readable checkpoint",
    )
    one_paragraph(
        app("visualize", f"ckpt_path={tmp_path / 'absent.pt'}", *paths),
        "checkpoint error",
        "absent.pt: no such checkpoint file",
    )
    one_paragraph(
        app("data.cache", "info", "dataset.name=nowhere", *paths),
        "config error",
        "run `python -m gaitgraph.data.cache build",
    )
    one_paragraph(
        app("data.synthetic", "format=bogus", f"out_dir={tmp_path}"),
        "config error",
        "format='bogus': expected one of casia_b",
    )
