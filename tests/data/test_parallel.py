"""ordered_map: results in unit order, in this process or in a pool; a worker's error reaches the caller intact."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gaitgraph.data.parallel import MAX_UNITS_PER_TASK, ordered_map, task_size
from gaitgraph.errors import DatasetFormatError


def _squares(offset: int, units: Sequence[int]) -> list[int]:
    if 13 in units:
        raise DatasetFormatError("/data/13.json", "frame 2 joint 3 x", "a finite number", "inf")
    return [u * u + offset for u in units]


def _flat(groups) -> list[int]:
    return [x for group in groups for x in group]


@pytest.mark.parametrize("workers", [0, 2])
def test_results_come_back_in_unit_order(workers: int):
    units = [u for u in range(40) if u != 13]
    assert _flat(ordered_map(_squares, 1, units, workers, "test")) == [u * u + 1 for u in units]


def test_a_worker_error_arrives_whole():
    with pytest.raises(
        DatasetFormatError, match=r"^/data/13\.json: frame 2 joint 3 x: expected a finite number, found inf$"
    ):
        _flat(ordered_map(_squares, 0, list(range(20)), 2, "test"))


def test_task_size():
    assert task_size(10, 2) == 1
    assert task_size(160, 2) == 10  # about 8 tasks per worker
    assert task_size(10_000, 16) == MAX_UNITS_PER_TASK
