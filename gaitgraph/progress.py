"""Progress that reads well on a terminal and in a file (nohup, SLURM, ``> log``).

On a terminal every loop gets a tqdm bar (nested ones below the outer one); log records are routed around the
bars so none is glued to a bar. When stderr is not a terminal, bars would write carriage returns and cursor-up
sequences into the file, so each loop instead writes, now and then, one plain line to stderr::

    train: 120/400 steps (30%), epoch 3/10, loss 1.234 | 1m02s elapsed, ETA 2m25s

``GAITGRAPH_PROGRESS`` chooses: ``auto`` (default: bars on a terminal, lines elsewhere), ``bar``, ``lines`` or
``off``. ``GAITGRAPH_PROGRESS_EVERY`` says how often a line is written: ``30`` / ``30s`` (default: at most one
line every 30 seconds, whichever loop is running) or ``10%`` (the outermost loop, at every 10 % of its total).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from gaitgraph.errors import ConfigError

MODES = ("auto", "bar", "lines", "off")
#: Bars and line reporters now open (the first is the outermost), and when the last line was written.
_open: list[Any] = []
_last_line = [0.0]
_redirect: list[contextlib.ExitStack] = []


def mode() -> str:
    """``bar``, ``lines`` or ``off``: ``GAITGRAPH_PROGRESS``, with ``auto`` decided by whether stderr is a terminal."""
    chosen = os.environ.get("GAITGRAPH_PROGRESS", "auto").strip().lower() or "auto"
    if chosen not in MODES:
        raise ConfigError("GAITGRAPH_PROGRESS (environment)", chosen, f"one of {', '.join(MODES)}")
    if chosen == "auto":
        return "bar" if sys.stderr.isatty() else "lines"
    return chosen


def every() -> tuple[float, float]:
    """(seconds, percent) between two lines from ``GAITGRAPH_PROGRESS_EVERY``; the unused one is 0."""
    text = os.environ.get("GAITGRAPH_PROGRESS_EVERY", "30").strip().lower()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if 0 < percent <= 100:
                return 0.0, percent
        else:
            seconds = float(text.removesuffix("s"))
            if seconds >= 0 and math.isfinite(seconds):
                return seconds, 0.0
    except ValueError:
        pass
    raise ConfigError(
        "GAITGRAPH_PROGRESS_EVERY (environment)", text, "seconds (30, 30s) or a percentage of the loop (10%)"
    )


def duration(seconds: float) -> str:
    """``45s``, ``2m05s``, ``3h04m``: short enough for a progress line."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class LineProgress:
    """tqdm's small interface (``update``, ``set_postfix``, ``set_description``, ``close``, iteration, ``with``)
    writing whole lines to stderr instead of redrawing a bar; silent when ``disable``."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        total: int | None = None,
        desc: str = "",
        unit: str = "it",
        initial: int = 0,
        disable: bool = False,
    ) -> None:
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.iterable, self.total, self.desc, self.unit = iterable, total, desc, unit
        self.n = self.initial = initial
        self.postfix = ""
        self.disable = disable
        self.start = time.monotonic()
        self.seconds, self.percent = every()
        self.next_percent = self._percent_done() // self.percent * self.percent + self.percent if self.percent else 0
        self.written_at = -1  # the count of the last line written
        if not disable:
            _open.append(self)

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def set_description(self, desc: str) -> None:
        """The name the lines start with."""
        self.desc = desc

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, **values: Any) -> None:
        """``key value`` pairs shown after the count (loss, learning rate, ...)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in {**(ordered_dict or {}), **values}.items())

    def update(self, n: int = 1) -> None:
        """Count ``n`` more; write a line when the interval (or the next percentage step) is reached."""
        self.n += n
        if self.disable:
            return
        if self.percent:
            if _open and _open[0] is self and self._percent_done() >= self.next_percent:
                self.next_percent = self._percent_done() // self.percent * self.percent + self.percent
                self._write()
        else:  # a loop shorter than the interval stays silent; all loops together write one line per interval
            now = time.monotonic()
            if now - self.start >= self.seconds and now - _last_line[0] >= self.seconds:
                self._write()

    def close(self) -> None:
        """Stop reporting; a loop that wrote lines ends with one saying it is done."""
        if self in _open:
            _open.remove(self)
            if self.written_at not in (-1, self.n):
                self._write()

    def line(self) -> str:
        """``desc: n/total units (p%), postfix | elapsed, ETA`` (no ETA before the first step or without a total)."""
        elapsed = time.monotonic() - self.start
        text = f"{self.desc}: {self.n}"
        units = self.unit + ("es" if self.unit.endswith(("s", "ch", "sh", "x")) else "s")
        if self.total:
            text += f"/{self.total} {units} ({self._percent_done():.0f}%)"
        else:
            text += f" {units}"
        if self.postfix:
            text += f", {self.postfix}"
        text += f" | {duration(elapsed)} elapsed"
        done = self.n - self.initial
        if self.total and done > 0 and self.n < self.total:
            text += f", ETA {duration(elapsed / done * (self.total - self.n))}"
        return text

    def _percent_done(self) -> float:
        return 100.0 * self.n / self.total if self.total else 0.0

    def _write(self) -> None:
        sys.stderr.write(self.line() + "\n")
        sys.stderr.flush()
        _last_line[0] = time.monotonic()
        self.written_at = self.n


class _Bar(tqdm):
    """A tqdm bar that routes console log records through ``tqdm.write`` while any bar is open."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("disable") and not _redirect:
            stack = contextlib.ExitStack()
            stack.enter_context(logging_redirect_tqdm())
            _redirect.append(stack)
        super().__init__(*args, **kwargs)
        if not self.disable:
            _open.append(self)

    def close(self) -> None:
        super().close()
        if _open is None or self not in _open:  # closed before (tqdm closes again when collected, even at exit)
            return
        _open.remove(self)
        if _redirect and not any(isinstance(bar, _Bar) for bar in _open):
            _redirect.pop().close()


def progress(
    iterable: Iterable | None = None,
    *,
    total: int | None = None,
    desc: str = "",
    unit: str = "it",
    initial: int = 0,
    enabled: bool = True,
    leave: bool = False,
    **bar_options: Any,
) -> Any:
    """A progress reporter for a loop: a tqdm bar on a terminal, occasional whole lines in a file, nothing when
    ``enabled`` is False or ``GAITGRAPH_PROGRESS=off``. Use it like tqdm (iterate, or ``update``/``close``);
    ``bar_options`` (e.g. ``unit_scale``) only reach a tqdm bar."""
    chosen = mode()
    if chosen == "bar":
        return _Bar(
            iterable,
            total=total,
            desc=desc,
            unit=unit,
            initial=initial,
            leave=leave,
            dynamic_ncols=True,
            disable=not enabled,
            **bar_options,
        )
    return LineProgress(iterable, total, desc, unit, initial, disable=not enabled or chosen == "off")
