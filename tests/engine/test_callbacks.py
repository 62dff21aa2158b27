"""The ``callbacks`` config group: every built-in switched off and configured from the command line, a callback of
one's own added with ``+callbacks.<name>._target_`` getting every hook in order (the two around the optimizer step
included), and a resume that switches an operational callback differently."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf, open_dict

from gaitgraph.engine.build import Splits, build_callbacks
from gaitgraph.engine.callbacks import Callback, Checkpointing, Profiling, Selection
from gaitgraph.engine.checkpoint import recipe_differences
from gaitgraph.errors import CheckpointError, ConfigError
from gaitgraph.train import train

from ..composed import Composed
from ..conftest import compose_train
from ..no_drawing import skip_drawing
from .hooks import Stopped

SELECT, TEST = object(), object()  # stand-ins for the selection (val) and test splits: only their identity counts
BUILT_INS = ["averaging", "selection", "logging", "checkpointing", "progress", "profiling"]
#: Two epochs of two batches of 16 PsyMo-10 windows of 8 frames from two subjects, validated and tested on one
#: subject each, one thread: about two CPU-seconds a run.
TINY = [
    "debug=fdr",
    "dataset.sequence_length=8",
    "dataset.split.train_subjects=[0,1]",
    "dataset.split.val_subjects=[4]",
    "dataset.split.test_subjects=[6]",
    "trainer.epochs=2",
    "trainer.val_every=1",
    "trainer.num_threads=1",
    "model=resgcn_n21_r8",
]
#: Every hook a Recorder saw, in order (the Trainer calls it in this process).
EVENTS: list[tuple[Any, ...]] = []


class Recorder(Callback):
    """Records every hook; around the optimizer step it also records what the step needs to be right."""

    def __init__(self, tag: str) -> None:
        self.tag = tag

    def on_fit_start(self, trainer: Any) -> None:
        EVENTS.append(("fit_start", self.tag, [type(c).__name__ for c in trainer.callbacks]))

    def on_train_epoch_start(self, trainer: Any, epoch: int) -> None:
        EVENTS.append(("epoch_start", epoch))

    def on_after_backward(self, trainer: Any) -> None:
        grads = [p.grad for p in trainer.network.parameters() if p.requires_grad]
        self.weight = next(trainer.network.parameters()).detach().clone()
        EVENTS.append(("after_backward", trainer.state.step, all(g is not None for g in grads)))

    def on_before_optimizer_step(self, trainer: Any, optimizer: Any) -> None:
        unchanged = torch.equal(next(trainer.network.parameters()), self.weight)
        same = optimizer is trainer.state.optimizer
        EVENTS.append(("before_optimizer_step", trainer.state.step, same, unchanged, _optimizer_steps(trainer)))

    def on_train_batch_end(self, trainer: Any, metrics: dict[str, float]) -> None:
        EVENTS.append(("batch_end", trainer.state.step, _optimizer_steps(trainer)))

    def on_train_epoch_end(self, trainer: Any, record: dict[str, Any]) -> None:
        EVENTS.append(("epoch_end", record["epoch"], "val/rank1" in record))

    def on_fit_end(self, trainer: Any) -> None:
        EVENTS.append(("fit_end",))


def _optimizer_steps(trainer: Any) -> int:
    """How many steps the (Adam-family) optimizer has taken on the first weight."""
    state = trainer.state.optimizer.state.get(next(trainer.network.parameters()), {})
    return int(state.get("step", 0))


class NotACallback:
    """Has none of the hooks the Trainer calls."""


@pytest.fixture(scope="module")
def composed() -> Composed:
    """The module's configs, each composed once (``debug=fdr`` alone is asked for by five tests)."""
    return Composed()


def _callbacks(composed: Composed, overrides: list[str], selection: object | None = SELECT) -> dict[str, Callback]:
    """``build_callbacks`` of a composed config, with a tiny network and stand-in splits, tracker and scores."""
    cfg = composed(["debug=fdr", *overrides])
    network = torch.nn.Linear(2, 2)
    optimizer = torch.optim.SGD(network.parameters(), lr=0.1)
    splits = Splits(train=None, val=selection, test=TEST, selection=selection, selection_key="val/rank1")
    return build_callbacks(cfg, splits, optimizer, network, logger=None, score=lambda net, split, name: 0.5)


def test_the_group_lists_every_built_in_in_call_order(composed: Composed):
    assert list(composed([]).callbacks) == BUILT_INS
    # averaging follows trainer.swa.enabled and profiling is idle unless switched on: four run by default
    assert list(_callbacks(composed, [])) == ["selection", "logging", "checkpointing", "progress"]
    assert list(_callbacks(composed, ["trainer.swa.enabled=true", "callbacks.profiling.enabled=true"])) == BUILT_INS
    assert composed(["debug=profiler"]).callbacks.profiling.enabled  # the group's node, switched on


@pytest.mark.parametrize("name", BUILT_INS)
def test_each_built_in_switches_off_from_the_command_line(composed: Composed, name: str):
    # averaging on too, except without checkpointing (its best.pt would be missing: a test below)
    on = ["callbacks.profiling.enabled=true"] + ([] if name == "checkpointing" else ["trainer.swa.enabled=true"])
    running = list(_callbacks(composed, on))
    assert name in running
    assert list(_callbacks(composed, [*on, f"callbacks.{name}=null"])) == [n for n in running if n != name]


def test_built_ins_take_their_settings_from_the_command_line_and_from_trainer_keys(composed: Composed):
    built = _callbacks(
        composed,
        [
            "callbacks.checkpointing.every_steps=50",
            "callbacks.selection.every=3",
            "callbacks.profiling.enabled=true",
            "callbacks.profiling.active=5",
            "trainer.swa.enabled=true",
            "trainer.epochs=10",
            "callbacks.averaging.start_fraction=0.5",
        ],
    )
    checkpointing, selection, profiling = built["checkpointing"], built["selection"], built["profiling"]
    assert isinstance(checkpointing, Checkpointing) and checkpointing.every_steps == 50
    assert isinstance(selection, Selection) and selection.every == 3 and selection.key == "val/rank1"
    assert isinstance(profiling, Profiling) and profiling.steps == 1 + 1 + 5
    assert built["averaging"].averaging.start_epoch == 5
    # the trainer.* keys recipes and the README name still set them
    legacy = _callbacks(
        composed, ["trainer.checkpoint_every_steps=7", "trainer.val_every=2", "trainer.swa.enabled=true"]
    )
    assert legacy["checkpointing"].every_steps == 7 and legacy["selection"].every == 2
    assert legacy["averaging"].averaging.start_epoch == 0  # debug=fdr: 1 epoch x 0.8


def test_the_run_decides_what_selection_and_checkpointing_save(composed: Composed):
    plain = _callbacks(composed, [])
    assert plain["selection"].save_best and not plain["checkpointing"].final_is_best
    averaged = _callbacks(composed, ["trainer.swa.enabled=true"])
    assert not averaged["selection"].save_best and averaged["checkpointing"].final_is_best
    assert _callbacks(composed, ["callbacks.selection=null"])["checkpointing"].final_is_best
    # nothing to select on: no selection, the final weights are best.pt
    no_val = _callbacks(composed, [], selection=None)
    assert "selection" not in no_val and no_val["checkpointing"].final_is_best
    assert list(_callbacks(composed, ["callbacks.checkpointing=null"])) == ["selection", "logging", "progress"]


@pytest.mark.parametrize(
    ("overrides", "key", "allowed"),
    [
        (["callbacks.checkpointing=null", "callbacks.selection=null"], "callbacks.checkpointing", "writes best.pt"),
        (["callbacks.checkpointing=null", "trainer.swa.enabled=true"], "callbacks.checkpointing", "writes best.pt"),
        (["+callbacks.kill._target_=tests.engine.hooks.KillAtStep"], "callbacks.kill", "missing a required"),
        (
            ["+callbacks.odd._target_=tests.engine.test_callbacks.NotACallback"],
            "callbacks.odd._target_",
            "a subclass of",
        ),
    ],
)
def test_a_callback_that_cannot_work_is_a_config_error(
    composed: Composed, overrides: list[str], key: str, allowed: str
):
    with pytest.raises(ConfigError, match=allowed) as err:
        _callbacks(composed, overrides)
    assert err.value.key == key


def test_progress_logging_profiling_and_added_callbacks_are_operational_the_others_recipe(composed: Composed):
    stored = composed(["debug=fdr"])
    current = composed(
        [
            "debug=profiler",
            "callbacks.progress=null",
            "callbacks.logging=null",
            "callbacks.profiling.active=5",
            "callbacks.checkpointing.every_steps=9",
            "+callbacks.mine._target_=tests.engine.test_callbacks.Recorder",
            "hparams_search=optuna_study",  # adds callbacks.pruning
        ]
    )
    assert "pruning" in current.callbacks and current.callbacks.profiling.enabled
    assert recipe_differences(_plain(stored), _plain(current)) == []
    for override, key in [
        ("callbacks.selection=null", "callbacks.selection"),
        ("callbacks.averaging.enabled=true", "callbacks.averaging.enabled"),
        ("callbacks.checkpointing=null", "callbacks.checkpointing"),
    ]:
        changed = _plain(composed(["debug=fdr", override]))
        assert [k for k, _, _ in recipe_differences(_plain(stored), changed)][0].startswith(key)


def test_a_checkpoint_from_before_the_callbacks_group_still_resumes(composed: Composed):
    stored = _plain(composed(["debug=fdr"]))
    stored["callbacks"] = {"kill": {"_target_": "tests.engine.hooks.KillAtStep", "step": 8}}  # no built-in nodes
    assert recipe_differences(stored, _plain(composed(["debug=fdr"]))) == []


def _plain(cfg: DictConfig) -> dict[str, Any]:
    """The resolved callbacks node, as a checkpoint stores it (the rest of the config left out)."""
    return {"callbacks": OmegaConf.to_container(cfg.callbacks, resolve=True)}


def _run_config(run_dir: Path, cache: Path, overrides: list[str]) -> DictConfig:
    cfg = compose_train([*TINY, f"paths.cache_dir={cache}", *overrides])
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


def test_a_callback_of_ones_own_gets_every_hook_in_order(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    skip_drawing(monkeypatch)  # the run's pictures are not looked at (tests/no_drawing.py)
    EVENTS.clear()
    overrides = [
        "callbacks.progress=null",
        "callbacks.logging=null",
        "+callbacks.rec._target_=tests.engine.test_callbacks.Recorder",
        "+callbacks.rec.tag=mine",
    ]
    train(_run_config(tmp_path / "run", shared_cache, overrides))
    assert EVENTS[0] == ("fit_start", "mine", ["Selection", "Checkpointing", "Recorder"])
    expected: list[tuple[Any, ...]] = [EVENTS[0]]
    step = 0
    for epoch in range(2):
        expected.append(("epoch_start", epoch))
        for _ in range(2):
            expected += [("after_backward", step, True), ("before_optimizer_step", step, True, True, step)]
            step += 1
            expected.append(("batch_end", step, step))
        expected.append(("epoch_end", epoch + 1, True))
    assert EVENTS == [*expected, ("fit_end",)], "\n".join(map(str, EVENTS))


@pytest.mark.slow
def test_resume_with_operational_callbacks_switched_otherwise(
    tmp_path: Path, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
):
    skip_drawing(monkeypatch)
    run_dir = tmp_path / "run"
    stop = ["+callbacks.stop._target_=tests.engine.hooks.StopAtStep", "+callbacks.stop.step=3"]
    with pytest.raises(Stopped):
        train(_run_config(run_dir, shared_cache, stop))
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == 3
    with pytest.raises(CheckpointError, match="callbacks.selection"):
        train(_run_config(run_dir, shared_cache, ["trainer.resume=auto", "callbacks.selection=null"]))
    EVENTS.clear()
    switched = [
        "trainer.resume=auto",
        "callbacks.progress=null",
        "callbacks.logging=null",
        "callbacks.profiling.enabled=true",
        "+callbacks.rec._target_=tests.engine.test_callbacks.Recorder",
        "+callbacks.rec.tag=resumed",
    ]
    train(_run_config(run_dir, shared_cache, switched))
    assert EVENTS[0] == ("fit_start", "resumed", ["Selection", "Checkpointing", "Profiling", "Recorder"])
    assert [e[1] for e in EVENTS if e[0] == "batch_end"] == [4]  # the one step left of 2 x 2
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["step"] == 4
