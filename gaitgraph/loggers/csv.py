"""``logger=csv``: a plain ``metrics.csv`` in the run directory, readable (pandas, a spreadsheet) while it grows."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import IO, Any

from gaitgraph.loggers.base import NullTracker
from gaitgraph.utils import atomic_write


class CsvLogger(NullTracker):
    """One row per :meth:`log_metrics` call: ``step`` (a call without one gets the last step logged, as in
    TensorBoard), then one column per key ever logged (empty where a row has no value). A new key rewrites the
    file once with the wider header (atomically); other rows are appended and flushed, so a reader never waits
    for the run to end. A resumed run in the same directory keeps the rows already there. Tables, images and
    artifacts are left to the run directory (eval/, checkpoints/).
    """

    def __init__(self, filename: str = "metrics.csv") -> None:
        self.filename = filename
        self.path: Path | None = None
        self.columns: list[str] = ["step"]
        self.rows: list[dict[str, Any]] = []
        self.step = 0
        self._file: IO[str] | None = None

    def start(self, run_dir: Path, config: dict[str, Any], name: str, tags: list[str], job_type: str = "train") -> None:
        """Open (or, on resume, continue) ``<run_dir>/<filename>``."""
        self.path = Path(run_dir) / self.filename
        if self.path.is_file():
            with self.path.open(newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or ["step"])
                self.rows = list(reader)
            self.step = max((int(float(r["step"])) for r in self.rows if r.get("step")), default=0)
        self._rewrite()

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Append one row; a key not seen before widens the header."""
        if self.path is None:
            return
        self.step = self.step if step is None else int(step)
        row = {"step": self.step, **metrics}
        self.rows.append(row)
        new = [k for k in metrics if k not in self.columns]
        if new or self._file is None:
            self.columns += new
            self._rewrite()
            return
        csv.DictWriter(self._file, self.columns, restval="").writerow(row)
        self._file.flush()

    def _rewrite(self) -> None:
        """Write header and all rows to a temp file, rename it into place and append from there on."""
        if self._file is not None:
            self._file.close()

        def write(tmp: Path) -> None:
            with tmp.open("w", newline="") as f:
                writer = csv.DictWriter(f, self.columns, restval="")
                writer.writeheader()
                writer.writerows(self.rows)

        atomic_write(self.path, write)
        self._file = self.path.open("a", newline="")

    def finish(self, exit_code: int = 0) -> None:
        """Close the file (safe twice)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self.path = None
