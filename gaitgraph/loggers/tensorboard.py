"""``logger=tensorboard``: event files under ``<run dir>/tensorboard/`` (``tensorboard --logdir outputs``).

Each run also records its HParams session in the same event files: the chosen config options (``model``,
``dataset``, ...), a few key hyper-parameters and the keys of a sweep's overrides, against the rank-1 and mAP
scalars the run logs, so TensorBoard's HParams tab lists every run under ``--logdir`` side by side.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitgraph.loggers.base import NullTracker
from gaitgraph.utils import markdown_table

#: Scalars the HParams tab shows against the hyper-parameters (the objective's key is added when it is logged).
HPARAM_METRICS = ("val/rank1", "val/rank1_best", "test/mean_rank1", "test/mean_mAP")
#: Hyper-parameters always recorded (dotted config keys; missing ones are left out).
HPARAM_KEYS = (
    "trainer.epochs",
    "trainer.batch_size",
    "trainer.seed",
    "optimizer.optimizer.lr",
    "optimizer.optimizer.weight_decay",
    "dataset.sequence_length",
    "loss.temperature",
    "tta",
)


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _overridden_keys() -> list[str]:
    """The config keys a Hydra app's command line (or a sweep trial) set; groups, ``hydra.*``, ``paths.*`` and
    ``hparams_search.*`` left out."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    keys = (o.split("=", 1)[0].lstrip("+~") for o in HydraConfig.get().overrides.task if "=" in o)
    # Where outputs go and the sweeper's bookkeeping (study name, trial number) are no hyper-parameters.
    return [k for k in keys if "." in k and not k.startswith(("hydra.", "paths.", "hparams_search."))]


def hparams_of(config: dict[str, Any], tags: list[str], keys: tuple[str, ...] | list[str] = HPARAM_KEYS) -> dict:
    """The run's hyper-parameters for TensorBoard's HParams tab: one ``<group>`` entry per ``group:option`` tag
    (the chosen config options), then every key of ``keys`` and of the command line's overrides that holds a
    number, string or bool in the resolved ``config``."""
    found: dict[str, Any] = dict(tag.split(":", 1) for tag in tags if ":" in tag)
    for key in [*keys, *_overridden_keys()]:
        value = _lookup(config, key)
        if isinstance(value, (bool, int, float, str)):
            found[key] = value
    return found


class TensorBoardLogger(NullTracker):
    """Scalars per key, tables as Markdown text, images as images, written with torch's ``SummaryWriter``.

    The resolved config is logged once as text (``config``); an artifact becomes a text line naming its file,
    since TensorBoard keeps no files. A call without a step uses the last step logged. ``extra_hparams``: config keys
    recorded as hyper-parameters besides :data:`HPARAM_KEYS`, the chosen options and the overridden keys.
    """

    def __init__(self, subdir: str = "tensorboard", flush_secs: int = 30, extra_hparams: list[str] = ()) -> None:
        self.subdir = subdir
        self.flush_secs = flush_secs
        self.hparam_keys = (*HPARAM_KEYS, *extra_hparams)
        self.writer = None
        self._session_end = None
        self.step = 0

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open the event file and log the run's name, job type, tags and config as text."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / self.subdir), flush_secs=self.flush_secs)
        header = f"**{name}** ({job_type}); tags: {', '.join(tags) or '-'}"
        self.writer.add_text("config", f"{header}\n\n```json\n{json.dumps(config, indent=2, default=str)}\n```", 0)
        self._hparams(config, tags)

    def _hparams(self, config: dict[str, Any], tags: list[str]) -> None:
        """The HParams session start, in this run's own event file (``SummaryWriter.add_hparams`` would open a
        second run folder); the metrics are the scalar tags this run logs."""
        from torch.utils.tensorboard.summary import hparams

        objective = config.get("optimized_metric")
        metrics = dict.fromkeys([*HPARAM_METRICS, *([f"final/{objective}"] if objective else [])], 0.0)
        experiment, start, self._session_end = hparams(hparams_of(config, tags, self.hparam_keys), metrics)
        for summary in (experiment, start):
            self.writer.file_writer.add_summary(summary)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """One scalar per numeric key, NaN included (other values are skipped: TensorBoard plots numbers)."""
        if self.writer is None:
            return
        self.step = self.step if step is None else int(step)
        for key, value in metrics.items():
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                self.writer.add_scalar(key, float(value), self.step)

    def log_table(self, key: str, table: pd.DataFrame) -> None:
        """The table as Markdown text (TensorBoard's text tab renders it)."""
        if self.writer is not None:
            self.writer.add_text(key, markdown_table(table), self.step)

    def log_image(self, key: str, path: Path) -> None:
        """An image file (RGB)."""
        if self.writer is not None and Path(path).is_file():
            from PIL import Image

            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            self.writer.add_image(key, pixels, self.step, dataformats="HWC")

    def log_artifact(self, path: Path, name: str, kind: str) -> None:
        """A text line naming the file (TensorBoard stores no files)."""
        if self.writer is not None and Path(path).exists():
            self.writer.add_text(f"artifacts/{name}", f"{kind}: `{Path(path).resolve()}`", self.step)

    def finish(self, exit_code: int = 0) -> None:
        """End the HParams session, flush and close the event file (safe twice)."""
        if self.writer is not None:
            if exit_code == 0 and self._session_end is not None:
                self.writer.file_writer.add_summary(self._session_end)
            self.writer.flush()
            self.writer.close()
            self.writer = None
