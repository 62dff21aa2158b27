"""Stopping a run cleanly on SIGTERM (what SLURM and most schedulers send before they kill a job) and SIGINT (Ctrl-C).

While the Trainer runs, :class:`StopSignals` only notes that a signal came. The Trainer finishes the step it is in,
asks every rank whether any of them was signalled (:func:`any_rank`: one tiny all-reduce per step, so all ranks stop
after the same step and no collective waits for a rank that left), writes ``last.pt`` and raises
:class:`~gaitgraph.errors.Interrupted`, which the entry point prints as one line before exiting with 128 + the
signal number (143, 130), as a shell reports a kill. A second Ctrl-C while that checkpoint is written aborts at
once; the write is atomic, so the previous checkpoint stays. A DDP parent process forwards the signals it gets to
its spawned ranks (:func:`forward_signals`).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from gaitgraph.engine.distributed import DistContext

#: The signals that stop a run cleanly, with the exit status of a process they end (128 + the signal number).
EXIT_CODES = {signal.SIGTERM: 128 + signal.SIGTERM, signal.SIGINT: 128 + signal.SIGINT}


class StopSignals:
    """Context manager: while inside, SIGTERM and SIGINT set :attr:`received` (the first signal's number) instead
    of ending the process; the previous handlers come back on exit. Signal handlers can only be installed in the
    main thread: elsewhere nothing changes."""

    def __init__(self) -> None:
        self.received = 0
        self.saving = False  # a second SIGINT while the interrupt checkpoint is written aborts at once
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        self.received, self.saving = 0, False
        self._previous = _install(self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        _restore(self._previous)
        self._previous = {}

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if self.saving and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.received = self.received or signum


def any_rank(ctx: DistContext, device: torch.device, value: int) -> int:
    """The largest ``value`` over all ranks (``value`` itself in a single process)."""
    if not ctx.distributed:
        return value
    box = torch.tensor([value], device=device)
    dist.all_reduce(box, op=dist.ReduceOp.MAX)
    return int(box.item())


@contextmanager
def forward_signals(pids: Sequence[int]) -> Iterator[None]:
    """While inside, SIGTERM and SIGINT sent to this process go to the processes ``pids`` instead (a DDP parent
    waiting for its ranks: each rank then stops cleanly, and the parent reports what rank 0 raised)."""

    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in pids:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:  # that rank has already finished
                pass

    previous = _install(forward)
    try:
        yield
    finally:
        _restore(previous)


def _install(handler: Any) -> dict[int, Any]:
    """Set ``handler`` for the stopping signals; returns the handlers it replaced (none outside the main thread,
    where Python cannot install handlers)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {s: signal.signal(s, handler) for s in EXIT_CODES}


def _restore(previous: dict[int, Any]) -> None:
    for s, old in previous.items():
        signal.signal(s, old if old is not None else signal.SIG_DFL)
