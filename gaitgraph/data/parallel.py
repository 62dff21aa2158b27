"""Order-preserving parallel map over work units, for readers of datasets with millions of files.

Units (e.g. subject folders) are grouped into tasks and run in a process pool; results come back in
unit order while only a bounded number of tasks are in flight, so memory stays bounded however large
the dataset is. ``workers`` 0 or 1 runs everything in this process (no pool, plain tracebacks).
"""

from __future__ import annotations

import multiprocessing as mp
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from gaitgraph.progress import progress

#: Tasks in flight per worker: enough to keep every worker busy, few enough to bound memory.
IN_FLIGHT_PER_WORKER = 2
#: Most units in one task; smaller tasks give a smoother progress bar and smaller results to hold.
MAX_UNITS_PER_TASK = 32


def task_size(n_units: int, workers: int) -> int:
    """Units per task: about 8 tasks per worker, at most :data:`MAX_UNITS_PER_TASK`."""
    return max(1, min(MAX_UNITS_PER_TASK, n_units // max(1, workers * 8)))


def ordered_map(
    fn: Callable[[Any, Sequence[Any]], Any],
    context: Any,
    units: Sequence[Any],
    workers: int,
    desc: str,
    unit: str = "unit",
) -> Iterator[Any]:
    """Yield ``fn(context, group)`` for consecutive groups of ``units``, in order.

    ``fn`` must be a module-level function and ``context`` picklable (both travel to the workers).
    A progress bar counts units. Processes are spawned, not forked: the caller may hold threads
    (torch) that a fork would copy in an unusable state.
    """
    size = task_size(len(units), workers)
    groups = [units[i : i + size] for i in range(0, len(units), size)]
    with progress(total=len(units), desc=desc, unit=unit) as bar:
        if workers <= 1 or len(groups) <= 1:
            for group in groups:
                yield fn(context, group)
                bar.update(len(group))
            return
        workers = min(workers, len(groups))
        limit = IN_FLIGHT_PER_WORKER * workers
        with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as pool:
            pending: deque[tuple[Future, int]] = deque()
            todo = iter(groups)
            try:
                for group in todo:
                    pending.append((pool.submit(fn, context, group), len(group)))
                    if len(pending) >= limit:
                        yield _next(pending, bar)
                while pending:
                    yield _next(pending, bar)
            finally:
                for future, _ in pending:  # an error or an abandoned generator: stop queued work
                    future.cancel()


def _next(pending: deque, bar: Any) -> Any:
    future, n = pending.popleft()
    result = future.result()
    bar.update(n)
    return result
