"""``debug=profiler``: a torch.profiler trace of a few training steps and a table of the top operators."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.utils import atomic_write

if TYPE_CHECKING:
    from gaitgraph.engine.trainer import Trainer

log = logging.getLogger(__name__)


class Profiling(Callback):
    """Profile steps ``wait + warmup + 1 ... + active`` of the first epoch (rank 0) into ``<run dir>/profiler/``:
    ``trace.json`` (Chrome trace format) and ``top_operators.txt`` (the operators with the most self CPU time)."""

    def __init__(self, wait: int = 1, warmup: int = 1, active: int = 3, top: int = 25) -> None:
        self.schedule = torch.profiler.schedule(wait=wait, warmup=warmup, active=active, repeat=1)
        self.steps = wait + warmup + active
        self.top = top
        self.profiler: torch.profiler.profile | None = None

    def on_fit_start(self, trainer: Trainer) -> None:
        if not trainer.ctx.is_main:
            return
        activities = [torch.profiler.ProfilerActivity.CPU]
        if trainer.device.type == "cuda":
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        folder = trainer.checkpointer.folder.parent / "profiler"
        self.profiler = torch.profiler.profile(
            activities=activities, schedule=self.schedule, on_trace_ready=lambda prof: self._write(prof, folder)
        )
        self.profiler.start()

    def on_train_batch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        if self.profiler is not None:
            self.profiler.step()
            if trainer.state.step >= self.steps:
                self._stop()

    def on_fit_end(self, trainer: Trainer) -> None:
        self._stop()

    def on_exception(self, trainer: Trainer, error: BaseException) -> None:
        self._stop()

    def _stop(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.profiler = None

    def _write(self, prof: Any, folder: Any) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write(folder / "trace.json", lambda tmp: prof.export_chrome_trace(str(tmp)))
        table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=self.top)
        atomic_write(folder / "top_operators.txt", lambda tmp: tmp.write_text(table + "\n"))
        log.info("profiler: %s/trace.json and top_operators.txt written", folder)
