"""``logger=tensorboard``: event files under ``<run dir>/tensorboard/`` (``tensorboard --logdir outputs``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from gaitgraph.loggers.base import NullLogger
from gaitgraph.utils import markdown_table


class TensorBoardLogger(NullLogger):
    """Scalars per key, tables as Markdown text, images as images, written with torch's ``SummaryWriter``.

    The resolved config is logged once as text (``config``); an artifact becomes a text line naming its file,
    since TensorBoard keeps no files. A call without a step uses the last step logged.
    """

    def __init__(self, subdir: str = "tensorboard", flush_secs: int = 30) -> None:
        self.subdir = subdir
        self.flush_secs = flush_secs
        self.writer = None
        self.step = 0

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open the event file and log the run's name, job type, tags and config as text."""
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / self.subdir), flush_secs=self.flush_secs)
        header = f"**{name}** ({job_type}); tags: {', '.join(tags) or '-'}"
        self.writer.add_text("config", f"{header}\n\n```json\n{json.dumps(config, indent=2, default=str)}\n```", 0)

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
        """Flush and close the event file (safe twice)."""
        if self.writer is not None:
            self.writer.flush()
            self.writer.close()
            self.writer = None
