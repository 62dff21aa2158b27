"""SIGTERM (a scheduler's warning before it kills a job) and SIGINT (Ctrl-C) during training: the step in progress is
finished and saved, one line says what was saved and how to resume, the exit status is 143 / 130 with no traceback,
and the printed command resumes to weights bit-identical to an uninterrupted run. Under DDP a signal that reaches one
rank stops all of them after the same step. Each signal is sent by a test callback (tests/faults/hooks.py) to its
own process, right after a chosen step: the signalled runs are processes of their own, forked from this one
(tests/forked.py; under DDP the signalled rank, forked from the platform's own fork server), the uninterrupted and
the resumed runs, and the DDP run's launching process, run their command lines in this process (tests/conftest.py
run_app)."""

from __future__ import annotations

import os
import shlex
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from gaitgraph.cli import exit_on_error, resume_command
from gaitgraph.engine.interrupt import StopSignals
from gaitgraph.errors import NonFiniteError
from tests.conftest import compose_train, run_app
from tests.forked import Exited, fork_app
from tests.no_drawing import skip_drawing

# PsyMo-10: 192 training sequences, 4 batches of 16 a run (limit_batches); the signal comes after step 2, mid-epoch.
TINY = [
    "dataset.sequence_length=16",
    "trainer.batch_size=16",
    "trainer.limit_batches=4",
    "trainer.epochs=1",
    "trainer.deterministic=true",
    "trainer.num_threads=1",
    "trainer.checkpoint_every_steps=100",  # the interrupt writes the only mid-epoch checkpoint
    "trainer.device=cpu",
    "logger=none",
    "baseline=false",
]
STEP = 2


def _args(run_dir: Path, cache: Path, *extra: str) -> list[str]:
    return [*TINY, f"hydra.run.dir={run_dir}", f"paths.cache_dir={cache}", *extra]


def _train(run_dir: Path, cache: Path, *extra: str) -> Exited:
    """``python -m gaitgraph.train`` in a process of its own (forked): the one a test callback signals."""
    return fork_app("gaitgraph.train", _args(run_dir, cache, *extra), run_dir.parent / "logs")


def _signal_at(step: int, name: str, rank: int = 0) -> list[str]:
    hook = "+callbacks.signal"
    return [
        f"{hook}._target_=tests.faults.hooks.SignalAtStep",
        f"{hook}.step={step}",
        f"{hook}.signum={name}",
        f"{hook}.rank={rank}",
    ]


def _weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["model"]


@pytest.fixture(scope="module", autouse=True)
def _no_pictures() -> Iterator[None]:
    """No run here looks at its pictures (tests/no_drawing.py); forked runs inherit the stub."""
    with pytest.MonkeyPatch.context() as patch:
        skip_drawing(patch)
        yield


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> tuple[Path, Path]:
    """An uninterrupted run (its folder, and the session's pose cache every test here reads)."""
    run_dir = tmp_path_factory.mktemp("signals") / "straight"
    done = run_app("gaitgraph.train", _args(run_dir, shared_cache))
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir, shared_cache


@pytest.mark.slow
@pytest.mark.parametrize(("name", "status"), [("SIGTERM", 143), ("SIGINT", 130)])
def test_signal_saves_the_step_then_the_printed_command_resumes_bit_exactly(
    straight: tuple[Path, Path], tmp_path: Path, name: str, status: int
):
    reference, cache = straight
    run_dir = tmp_path / "run"
    stopped = _train(run_dir, cache, *_signal_at(STEP, name))
    assert stopped.returncode == status, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1, stopped.stderr[-3000:]
    said, command = lines[0].split(" Resume with: ")
    assert f"{name} after step {STEP} (epoch 1, batch {STEP} of 4): saved {run_dir}/checkpoints/last.pt" in said
    saved = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert (saved["step"], saved["batches"]["position"]) == (STEP, STEP)

    words = shlex.split(command)
    assert words[0] == "gaitgraph-train" and "trainer.resume=auto" in words and f"hydra.run.dir={run_dir}" in words
    resumed = run_app("gaitgraph.train", words[1:])  # the callback stays: step 2 is past
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    a, b = _weights(reference), _weights(run_dir)
    assert [k for k in a if not torch.equal(a[k], b[k])] == []


@pytest.mark.slow
def test_a_signal_on_one_ddp_rank_stops_every_rank_after_the_same_step(straight: tuple[Path, Path], tmp_path: Path):
    _, cache = straight
    run_dir = tmp_path / "ddp"
    # The signalled process is rank 1, forked from the platform's fork server; the launching process runs in this one.
    stopped = run_app(
        "gaitgraph.train", _args(run_dir, cache, "trainer.devices=2", *_signal_at(STEP, "SIGTERM", rank=1))
    )
    assert stopped.returncode == 143, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr
    assert f"SIGTERM after step {STEP} (epoch 1, batch {STEP} of 4)" in stopped.stderr
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == STEP


@pytest.mark.slow
def test_ctrl_c_in_a_sweep_fails_the_trial_and_ends_the_sweep_in_one_line(straight: tuple[Path, Path], tmp_path: Path):
    _, cache = straight
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    sweep = [
        "-m",
        "hparams_search=optuna_small",
        "hydra.sweeper.n_trials=2",
        f"hparams_search.sqlite_path={tmp_path / 'study.db'}",
        f"paths.output_root={tmp_path / 'out'}",
        f"paths.cache_dir={cache}",
        *[o for o in TINY if not o.startswith("trainer.checkpoint_every_steps")],
    ]
    # Only this test needs optuna (about 2 s to import): imported before the fork, the child has it too.
    import optuna

    stopped = fork_app("gaitgraph.train", [*sweep, *_signal_at(1, "SIGINT")], tmp_path / "logs")
    assert stopped.returncode == 130, stopped.stderr[-3000:]
    assert "Traceback" not in stopped.stderr and "Error executing job" not in stopped.stderr
    lines = [line for line in stopped.stderr.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1 and "SIGINT after step 1" in lines[0], stopped.stderr[-3000:]
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL]  # the second trial never started


def test_stop_signals_note_the_first_signal_and_restore_the_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    with StopSignals() as signals:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        assert signals.received == signal.SIGTERM  # noted, the process goes on
        signals.saving = True
        with pytest.raises(KeyboardInterrupt):  # a second Ctrl-C while saving aborts at once
            os.kill(os.getpid(), signal.SIGINT)
    assert {s: signal.getsignal(s) for s in before} == before


def test_ctrl_c_outside_training_is_one_line_and_exit_130(capsys: pytest.CaptureFixture[str]):
    @exit_on_error
    def loading() -> None:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        loading()
    assert stop.value.code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("interrupted: Ctrl-C (SIGINT): stopped;")


def test_the_resume_command_keeps_the_overrides_and_replaces_what_it_changes():
    overrides = ["trainer.epochs=3", "trainer.resume=null", "+callbacks.x._target_=a.B", "optimizer.optimizer.lr=1"]
    cfg = compose_train(overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = "/runs/a b"
    err = NonFiniteError("diverged")
    err.resume_overrides = ["trainer.resume_changes=[optimizer.optimizer.lr]", "optimizer.optimizer.lr=0.1"]
    HydraConfig.instance().set_config(cfg)
    try:
        words = shlex.split(resume_command(err) or "")
    finally:
        HydraConfig.instance().cfg = None
    assert words == [
        "gaitgraph-train",
        "trainer.epochs=3",
        "+callbacks.x._target_=a.B",
        "trainer.device=cpu",  # compose_train's
        "trainer.resume=auto",
        "trainer.resume_changes=[optimizer.optimizer.lr]",
        "optimizer.optimizer.lr=0.1",
        "hydra.run.dir=/runs/a b",
    ]
    assert resume_command(err) is None  # outside a Hydra command there is nothing to print
