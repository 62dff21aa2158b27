"""Every option of every config group BUILDS AND RUNS: one ``debug=fdr``-sized run through the real ``train()``,
in process, on tiny synthetic data in the option's own format, evaluation included (every protocol is scored).

The cases come from the files in ``conf/<group>/``, so a new option that does not build or run fails here without
anyone adding a line. Each option runs once: an option an experiment chooses (model, dataset, loss, augmentation,
optimizer) runs in that experiment's case; every other one runs in a case on the base recipe, on a dataset of the
option's layout (the data-independent groups' options dealt out over the dataset cases); the ``debug=`` group runs
at its own budgets in tests/test_debug.py. What the tiny trees cannot hold (subject lists,
held-out counts, P x K) is fitted by :func:`tests.synthetic_trees.fitting`.

Tiers: every run case is ``slow`` (``make test`` runs them) except the default recipe's, :data:`FAST_RUN`, so
``make test-fast`` still trains a whole recipe in process; the checks that only compose configs are fast.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from matplotlib.figure import Figure
from omegaconf import DictConfig, OmegaConf, open_dict

from gaitgraph import CONF_DIR
from gaitgraph.evaluation import pipeline, plots
from gaitgraph.train import train

from .conftest import compose_train, config_options
from .no_drawing import skip_drawing
from .synthetic_trees import fitting, narrow, write_trees

#: What every case shares: two training steps, no tracker unless the logger is the option, no pose baseline, and
#: one torch thread (``num_threads=auto`` would take every core: the OpenMP pools of parallel test workers then
#: wait on each other and spin). Checkpoints at epoch ends only: fdr's mid-epoch ``last.pt`` serialises the same
#: state a step earlier (tests/test_debug.py runs fdr as written).
FDR = ["debug=fdr", "baseline=false", "trainer.num_threads=1", "trainer.checkpoint_every_steps=null"]
#: 8-frame training windows (fdr's 16 halve every step and every evaluation that has no eval length of its own):
#: each network, augmentation and loss runs the same code on shorter walks.
WINDOW = ["dataset.sequence_length=8"]
#: The one run case of the fast tier: the default recipe (``make train``), spelt out.
FAST_RUN = "gaitgraph2_psymo10"
#: The experiment that keeps fdr's 16-frame windows: its case checks that it trains on 16 and evaluates 17.
FULL_WINDOWS = "gaitgraph1_oumvlp"
#: The keypoints option that reads each joint layout a dataset declares.
KEYPOINTS = {"coco17": "coco17", "openpose18": "openpose"}


@pytest.fixture(scope="module")
def trees(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_trees(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One pose cache for the module: each format is parsed once, every later case reads the cache."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def no_png(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Figures are built but not drawn (drawing and PNG encoding are most of a tiny run's time); the default recipe
    draws its own, and tests/evaluation/test_eval_plots.py checks the pictures. The heatmap and the curves are drawn
    by ``plots.write_png`` (report.py holds the name too), retrieval's CMC plot by ``Figure.savefig``."""
    if request.node.name == f"test_experiment[{FAST_RUN}]":
        return
    skip_drawing(monkeypatch)
    monkeypatch.setattr(Figure, "savefig", plots.write_png)  # drawn by write_png, which skip_drawing emptied


def compose_in_layout(overrides: Callable[[str], list[str]], layout: Callable[[DictConfig], str]) -> DictConfig:
    """``overrides(<joint layout>)`` composed for the layout the composed config declares (``layout(cfg)``): COCO-17
    first, composed again only for a config that declares another (one compose, not two, for most cases)."""
    cfg = compose_train(overrides("coco17"))
    declared = layout(cfg)
    return cfg if declared == "coco17" else compose_train(overrides(declared))


def fit_to_trees(cfg: DictConfig, trees: Path, cache_dir: Path, run_dir: Path) -> DictConfig:
    """The composed ``cfg`` fitted to the tiny tree of the dataset it chooses (zoo models narrowed), writing into
    ``run_dir``."""
    fitted = [*fitting(cfg.dataset.name, trees), f"paths.cache_dir={cache_dir}", f"paths.output_root={run_dir.parent}"]
    fitted += narrow(cfg.model)
    cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(fitted))
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    return cfg


def run_recipe(composed: DictConfig, trees: Path, cache_dir: Path, run_dir: Path) -> tuple[DictConfig, dict]:
    """Train the ``composed`` config fitted to the tiny trees; return the config and the run's metrics.json, after
    checking that every protocol of the dataset was scored on the test split and that the objective is finite."""
    cfg = fit_to_trees(composed, trees, cache_dir, run_dir)
    value = train(cfg)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sorted(metrics["test"]) == sorted(cfg.dataset.protocols), "a protocol was not scored"
    for name, result in metrics["test"].items():
        rank1 = result["mean_rank1"]  # a submission-only protocol has none: its server scores it
        assert rank1 is None if name.endswith("submission") else 0.0 <= rank1 <= 100.0, (name, rank1)
    assert value is not None and math.isfinite(value)
    return cfg, metrics


# --- experiment= : every recipe, as written, on its own dataset's format ------------------------------------------


@pytest.mark.parametrize(
    "option", [o if o == FAST_RUN else pytest.param(o, marks=pytest.mark.slow) for o in config_options("experiment")]
)
def test_experiment(option: str, trees: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    windows = []
    embed = pipeline.embed_poseset
    monkeypatch.setattr(pipeline, "embed_poseset", lambda *a, **k: windows.append(a[3]) or embed(*a, **k))
    # GPGait's three-phase OneCycle (pct_start 0.5) has a zero-step phase in a 2-step run: 3 steps.
    steps = ["trainer.limit_batches=3"] if option.startswith("gpgait") else []
    window = [] if option == FULL_WINDOWS else WINDOW
    composed = compose_train([f"experiment={option}", *FDR, *window, "logger=none", *steps])
    cfg, _ = run_recipe(composed, trees, cache_dir, tmp_path / "run")
    assert set(windows) == {cfg.dataset.eval_sequence_length or cfg.dataset.sequence_length}
    if option == FULL_WINDOWS:  # trains on 16-frame windows, evaluates the centre 17 (the reference's)
        assert cfg.dataset.sequence_length == 16 and windows and set(windows) == {17}


# --- which options the experiments train ---------------------------------------------------------------------------


@functools.cache
def recipe_choices(group: str) -> frozenset[str]:
    """The options of ``group`` some experiment trains: the one its defaults name (``override /<group>: ...`` in
    conf/experiment/), or train.yaml's default where it names none. test_experiment builds and runs those."""
    key = f"override /{group}"
    base = [
        e[group] for e in OmegaConf.load(CONF_DIR / "train.yaml").defaults if isinstance(e, DictConfig) and group in e
    ]
    chosen = set()
    for path in (CONF_DIR / "experiment").glob("*.yaml"):
        named = [e[key] for e in OmegaConf.load(path).get("defaults", []) if isinstance(e, DictConfig) and key in e]
        chosen.update(named or base)
    return frozenset(chosen)


def unchosen(group: str) -> list[str]:
    """The options of ``group`` no experiment trains: they get cases of their own below."""
    return [o for o in config_options(group) if o not in recipe_choices(group)]


# --- model= : every network no experiment trains, on a dataset of its joint layout --------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("option", unchosen("model"))
def test_model(option: str, trees: Path, cache_dir: Path, tmp_path: Path):
    def overrides(layout: str) -> list[str]:
        data = "oumvlp" if layout == "openpose18" else "casia_b"
        return [f"model={option}", f"dataset={data}", f"keypoints={KEYPOINTS[layout]}", *FDR, *WINDOW, "logger=none"]

    composed = compose_in_layout(overrides, lambda cfg: cfg.model.get("keypoints") or "coco17")
    run_recipe(composed, trees, cache_dir, tmp_path / "run")


# --- dataset= no experiment trains, and GPGait on the retrieval sets (each case with one option of loss=,
# augmentation=, optimizer= no experiment trains, and of logger=, so each of those runs too) -------------------------

#: The groups whose options an experiment may choose; the options none chooses are dealt out over the dataset
#: cases (an option whose group has fewer such options than there are cases repeats; a group with none keeps the
#: base recipe's), so every one of them trains once.
RECIPE_COMPONENTS = ("loss", "augmentation", "optimizer")
#: No experiment case runs a tracker (they run logger=none): every logger option is dealt out.
COMPONENTS = (*RECIPE_COMPONENTS, "logger")
#: The retrieval sets on which part-based GPGait trains, scored by Euclidean retrieval (every other case trains the
#: default model, or GPGait where the loss needs its classifier head).
PART_RETRIEVAL = ("grew", "gait3d")


def _dataset_cases() -> list[tuple[str, ...]]:
    datasets = [d for d in unchosen("dataset") if d not in PART_RETRIEVAL] + list(PART_RETRIEVAL)
    dealt = [unchosen(g) or [""] for g in RECIPE_COMPONENTS] + [config_options("logger")]
    rows = max(len(datasets), *(len(options) for options in dealt))
    return [(datasets[i % len(datasets)], *(options[i % len(options)] for options in dealt)) for i in range(rows)]


@pytest.mark.slow
@pytest.mark.parametrize(("dataset", *COMPONENTS), _dataset_cases(), ids=lambda v: v or "base")
def test_dataset_and_components(
    dataset: str,
    loss: str,
    augmentation: str,
    optimizer: str,
    logger: str,
    trees: Path,
    cache_dir: Path,
    tmp_path: Path,
    no_png: None,
    monkeypatch: pytest.MonkeyPatch,
):
    monkeypatch.setenv("WANDB_MODE", "offline")
    # cross-entropy needs a classifier head: triplet_ce trains GPGait (its recipe), as do the PART_RETRIEVAL sets
    model = ["model=gpgait"] if loss == "triplet_ce" or dataset in PART_RETRIEVAL else []
    dealt = zip(COMPONENTS, (loss, augmentation, optimizer, logger))
    chosen = [f"dataset={dataset}", *(f"{group}={option}" for group, option in dealt if option)]

    def overrides(layout: str) -> list[str]:
        # GPGait is built on COCO-17: an OpenPose-18 set is converted on read (keypoints=openpose_coco17, its
        # OUMVLP recipe's conversion).
        keypoints = "openpose_coco17" if model and layout == "openpose18" else KEYPOINTS[layout]
        return [*chosen, f"keypoints={keypoints}", *model, *FDR, *WINDOW]

    composed = compose_in_layout(overrides, lambda cfg: cfg.dataset.layout)
    cfg, metrics = run_recipe(composed, trees, cache_dir, tmp_path / "run")
    if dataset in PART_RETRIEVAL:
        result = metrics["test"][dataset]
        assert result["kind"] == "retrieval" and result["distance"] == "euclidean" and result["n_scored"] > 0
    files = {"wandb": "wandb", "csv": "metrics.csv", "tensorboard": "tensorboard"}
    for name in cfg.logger or {}:
        assert (tmp_path / "run" / files[name]).exists(), f"logger {name} wrote nothing"


def test_every_option_runs_in_a_recipe_or_in_a_case_of_its_own():
    for group in ("model", *RECIPE_COMPONENTS, "dataset"):
        assert recipe_choices(group) <= set(config_options(group)), f"an experiment names a {group} that does not exist"
    assert {"gaitgraph1", "gaittr", "gpgait", "resgcn_n21_r8"} <= recipe_choices("model")
    assert {"supcon", "triplet", "triplet_ce"} <= recipe_choices("loss")
    dealt = list(zip(*_dataset_cases()))
    assert set(dealt[0]) >= set(unchosen("dataset")) and set(dealt[-1]) == set(config_options("logger"))
    for group, options in zip(RECIPE_COMPONENTS, dealt[1:-1]):
        assert set(options) - {""} == set(unchosen(group)), group


# --- debug= : each debug config runs at its own budget and keeps its promise in tests/test_debug.py --------------


def test_a_logger_named_on_the_command_line_survives_debug():
    for debug in config_options("debug"):
        assert list(compose_train([f"debug={debug}", "logger=tensorboard"]).logger) == ["tensorboard"], debug
        assert not compose_train([f"debug={debug}"]).logger, f"debug={debug} must default to no tracker"


# --- hparams_search= : one trial of each sweep, through Hydra's multirun and the Optuna sweeper, in process ---------


#: Per sweep option, what its one trial adds. optuna: README's
#: `-m hparams_search=optuna experiment=gaitgraph2_casia_b`, the paper recipe that holds out validation only in
#: a sweep (here the 4th of the tiny tree's 4 training subjects).
#: optuna_ddp: trained on one device (its two DDP workers take a minute to start on 2 cores; DDP runs are
#: tests/engine/test_ddp.py's), so what runs is its search space and its own study.
SWEEP_EXTRA = {
    "optuna": [
        "experiment=gaitgraph2_casia_b",
        "dataset.split.train_subjects=[1,2,3,4]",
        "dataset.split.val_count=1",
        "dataset.split.test_subjects=[5,6]",
    ],
    "optuna_ddp": ["trainer.devices=1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("option", [o for o in config_options("hparams_search") if o != "optuna_slurm"])
def test_hparams_search(option: str, trees: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """One trial through Hydra's multirun, the Optuna sweeper plugin and train(), all in this process."""
    from gaitgraph.train import main

    # trainer.batch_size on the command line is fixed for the sweeper: its 256 would not fit the tiny trees
    overrides = [f"hparams_search={option}", *FDR, *WINDOW, "logger=none", "trainer.batch_size=16"]
    overrides.append("hydra.sweeper.sampler.seed=0")  # the same trial every time
    extra = SWEEP_EXTRA.get(option, [])
    fitted = fitting(compose_train([*overrides, *extra]).dataset.name, trees)
    fitted = [f for f in fitted if f.split("=", 1)[0] not in {e.split("=", 1)[0] for e in extra}]
    if option == "optuna":
        fitted.remove("dataset.split.val_subjects=[4]")
    where = [f"paths.cache_dir={cache_dir}", f"paths.output_root={tmp_path}", f"hydra.sweep.dir={tmp_path / 's'}"]
    args = [*overrides, *extra, *fitted, *where, "hydra.sweeper.n_trials=1"]
    monkeypatch.setattr(sys, "argv", ["gaitgraph-train", "-m", *args])
    GlobalHydra.instance().clear()
    main()
    jobs = list((tmp_path / "s").glob("*/metrics.json"))
    assert len(jobs) == 1, list((tmp_path / "s").rglob("*"))
    metrics = json.loads(jobs[0].read_text())
    assert metrics["metric_name"] == "val/rank1" and math.isfinite(metrics["metric"]) and metrics["val"]
    assert OmegaConf.load(jobs[0].parent / ".hydra" / "config.yaml").hparams_search.study_name


def test_slurm_sweep_builds_its_launcher_and_sweeper():
    """hparams_search=optuna_slurm is optuna's search (run above) submitted through SLURM, which this machine lacks:
    its launcher and sweeper are built from the composed settings, and the recipe passes preflight."""
    from hydra.utils import instantiate

    from gaitgraph.engine.preflight import preflight

    cfg = compose_train(["hparams_search=optuna_slurm"], return_hydra_config=True)
    launcher = instantiate(cfg.hydra.launcher)
    assert type(launcher).__name__ == "SlurmLauncher" and cfg.hydra.launcher.gpus_per_node == cfg.trainer.devices
    assert type(instantiate(cfg.hydra.sweeper)).__name__ == "GaitGraphOptunaSweeper"
    with open_dict(cfg):
        del cfg["hydra"]
    preflight(cfg)


def test_readme_sweep_of_the_casia_b_paper_recipe_holds_out_validation():
    """README's ``-m hparams_search=optuna experiment=gaitgraph2_casia_b``: the paper trains on 1-74; its sweep on
    1-64 and selects on 65-74 (dataset=casia_b's validation subjects); a plain run keeps the paper's split."""
    from gaitgraph.data.splits import resolve_split
    from gaitgraph.schema import validate_sweep

    sweep = compose_train(["hparams_search=optuna", "experiment=gaitgraph2_casia_b"])
    validate_sweep(sweep)
    split = resolve_split(sweep.dataset)
    assert split["train_subjects"] == list(range(1, 65)) and split["val_subjects"] == list(range(65, 75))
    paper = resolve_split(compose_train(["experiment=gaitgraph2_casia_b"]).dataset)
    assert paper["train_subjects"] == list(range(1, 75)) and paper["val_subjects"] == []
