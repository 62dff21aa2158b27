"""``python -m gaitgraph.train`` (``gaitgraph-train``): the one train/eval function behind single runs, DDP runs
and every sweep trial.

``trainer.devices=N`` spawns N ranks inside the task (so a DDP run can be one sweep trial); under ``torchrun``
every rank runs this app and joins the launcher's group (pin ``hydra.run.dir``). See docs/design.md.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig, OmegaConf

from gaitgraph.cli import config_choices, entry, print_config_tree
from gaitgraph.schema import validate
from gaitgraph.utils import build, run_dir_of

if TYPE_CHECKING:
    from gaitgraph.engine.distributed import DistContext

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | None:
    """Train, select on validation, evaluate on test; return ``optimized_metric`` in percent (None without a val
    split; metrics.json's ``metric`` holds the same number as a fraction).

    Writes to the run directory: checkpoints/{last,previous,best}.pt, metrics.json, eval/ (tables, heatmap),
    train.log and the trackers' files.
    """
    # The engine (and torch) load when a run starts, not with this module: --help, --cfg and shell completion
    # import this file and answer at once (benchmarks/startup.py).
    from gaitgraph.engine import claim, distributed
    from gaitgraph.engine.checkpoint import check_run_dir
    from gaitgraph.engine.preflight import preflight

    validate(cfg)
    preflight(cfg)  # builds every part on nothing: a wrong key or value fails here, before any data is read
    run_dir = run_dir_of(cfg)
    with claim.holding(run_dir):  # one run per folder (docs/trust.md); under torchrun, rank 0 holds it for all
        if claim.claims_here():
            check_run_dir(run_dir, cfg.trainer.resume, cfg.trainer.overwrite)
        # Spawned ranks have no Hydra context: they get the resolved config and the run directory.
        plain = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        args = (plain, run_dir, config_choices())
        return distributed.launch(run, cfg.trainer.devices, cfg.trainer.device, args, run_dir)


def run(ctx: DistContext, cfg: DictConfig, run_dir: Path, choices: dict[str, str]) -> float | None:
    """The whole run on one rank; rank 0 alone evaluates, writes and reports, the others wait at barriers."""
    from gaitgraph.engine.build import build_trainer, load_splits, setup_process
    from gaitgraph.engine.results import finish
    from gaitgraph.evaluation.evaluator import Evaluator
    from gaitgraph.evaluation.metrics_file import table_title
    from gaitgraph.loggers import tracker_session

    device = setup_process(ctx, cfg)
    if ctx.is_main:
        print_config_tree(cfg, run_dir)
    skeleton = build(cfg.keypoints)
    splits = load_splits(ctx, cfg, skeleton)
    evaluator = Evaluator(cfg, skeleton, device)
    with tracker_session(cfg, run_dir, choices, job_type="train", enabled=ctx.is_main) as tracker:
        trainer = build_trainer(ctx, cfg, run_dir, splits, skeleton, device, tracker, evaluator.score)
        trainer.fit()
        title = table_title(cfg.dataset.name, cfg.model._target_.rsplit(".", 1)[-1], bool(cfg.tta))
        return finish(ctx, cfg, run_dir, trainer, splits, evaluator, tracker, title)


@entry(
    "train",
    examples=(
        "                                   # GaitGraph2 on the embedded PsyMo-10 subset",
        "model=gpgait trainer.epochs=10     # a zoo model, fewer epochs",
        "experiment=gaitgraph2_casia_b paths.data_dir=/data   # a paper recipe on your data",
        "debug=fdr                          # a seconds-long smoke run",
        "-m hparams_search=optuna_small     # an Optuna sweep",
        "trainer.resume=auto hydra.run.dir=outputs/my-run      # start or continue a named run",
    ),
)
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point: returns the objective so sweepers can optimise it."""
    return train(cfg)


if __name__ == "__main__":
    main()
