"""Recipe changes a resume may make when they are named (``trainer.resume_changes``): what a diverged run needs to go
on from its last good checkpoint, a lower learning rate or a gradient clip (:data:`~gaitgraph.schema.RESUME_CHANGES`).

A learning-rate change scales every learning rate the optimizer and its schedule hold by new / old, so the schedule
goes on from where it was, at the new scale (for OneCycle and cosine decay to 0 this is the schedule a fresh run
with the new rate would have at that step). A gradient clip needs nothing in the state: the Trainer reads it from
the config. Each change is logged and recorded in the run's history (``metrics.json``) with the step it took effect.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gaitgraph.errors import CheckpointError, short_repr

log = logging.getLogger(__name__)

LR = "optimizer.optimizer.lr"
#: Config keys that follow the learning rate by interpolation (OneCycle's ``max_lr: ${..optimizer.lr}``): they may
#: change with it, by the same factor.
LR_FOLLOWERS = ("optimizer.scheduler.max_lr",)
#: Entries of the optimizer's parameter groups and of the scheduler's state that hold learning rates.
GROUP_LRS = ("lr", "initial_lr", "max_lr", "min_lr")
SCHEDULER_LRS = ("base_lrs", "_last_lr")


def allowed(changes: Sequence[str], diffs: Sequence[tuple[str, Any, Any]]) -> set[str]:
    """The differing keys that ``changes`` permits: the named keys, and the learning rate's followers when they
    changed by the same factor as the learning rate."""
    keys = set(changes)
    lr = next(((a, b) for k, a, b in diffs if k == LR), None)
    if LR in keys and lr is not None and _is_number(lr[0]) and lr[0]:
        factor = lr[1] / lr[0]
        keys |= {k for k, a, b in diffs if k in LR_FOLLOWERS and _is_number(a) and a and math.isclose(b / a, factor)}
    return keys


def apply(saved: dict[str, Any], changed: Sequence[tuple[str, Any, Any]], path: Path) -> None:
    """Make the checkpoint ``saved`` (read from ``path``) continue under the ``(key, stored, current)`` changes, and
    record them in its history."""
    for key, old, new in changed:
        if key != LR:
            continue
        if not (_is_number(old) and old > 0 and _is_number(new)):
            raise CheckpointError(
                f"{path}: cannot change {LR} from {short_repr(old)} to {short_repr(new)} on resume (a learning-rate "
                "change scales the stored schedule by new / old: both must be numbers > 0)"
            )
        _scale_learning_rates(saved, new / old)
    shown = "; ".join(f"{k}: {short_repr(a, 40)} -> {short_repr(b, 40)}" for k, a, b in changed)
    log.warning(
        "resuming from %s at step %d with changes named in trainer.resume_changes: %s", path, saved["step"], shown
    )
    saved["history"] = [
        *saved["history"],
        {"resumed_at_step": saved["step"], "resume_changes": {k: [a, b] for k, a, b in changed}},
    ]


def _scale_learning_rates(saved: dict[str, Any], factor: float) -> None:
    for group in saved["optimizer"]["param_groups"]:
        for key in GROUP_LRS:
            if _is_number(group.get(key)):
                group[key] = group[key] * factor
    scheduler = saved.get("scheduler") or {}
    for key in SCHEDULER_LRS:
        if isinstance(scheduler.get(key), list):
            scheduler[key] = [v * factor for v in scheduler[key]]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
