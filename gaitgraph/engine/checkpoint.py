"""Checkpoints that are never lost: finite, atomic, the previous one kept; safe loading; exact-or-refused resume.

- :class:`Checkpointer` writes ``<run dir>/checkpoints/<name>`` only from a state whose tensors are all finite,
  through a temporary file and an atomic rename; before ``last.pt`` is replaced, the old one becomes
  ``previous.pt``, so a crash at any moment leaves at least one readable checkpoint.
- :func:`~gaitgraph.utils.load_checkpoint` reads with ``torch.load(weights_only=True)`` and turns every failure
  into a :class:`~gaitgraph.errors.CheckpointError` naming the file.
- :func:`resume_checkpoint` finds what ``trainer.resume`` points at, falls back to ``previous.pt`` (saying so) when
  ``last.pt`` is unreadable, and refuses a checkpoint whose recipe differs from the current config
  (:func:`recipe_differences`).
- :func:`check_run_dir` refuses a fresh run in a directory that holds another run's checkpoints or results (its
  callers claim the directory first, :mod:`gaitgraph.engine.claim`, so two runs starting at once cannot both pass).
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from gaitgraph.engine import resume_changes
from gaitgraph.engine.state import CHECKPOINT_FORMAT
from gaitgraph.errors import CheckpointError, NonFiniteError, RunDirInUseError, short_repr
from gaitgraph.schema import RESUME_CHANGES
from gaitgraph.utils import atomic_write, load_checkpoint

log = logging.getLogger(__name__)

LAST, PREVIOUS, BEST = "last.pt", "previous.pt", "best.pt"
#: What makes a run directory "used": a fresh run there would replace these.
RUN_OUTPUTS = (f"checkpoints/{LAST}", f"checkpoints/{PREVIOUS}", f"checkpoints/{BEST}", "metrics.json")
#: Config keys that say how a run is operated, not what it trains: they may change on resume.
OPERATIONAL_KEYS = (
    "paths",
    "logger",
    "task_name",
    "tta",
    "baseline",
    "hparams_search",
    "callbacks",  # progress, logging, profiling, a sweep's pruning, your own: all but RECIPE_CALLBACKS below
    "callbacks.checkpointing.every_steps",  # trainer.checkpoint_every_steps
    "local",
    "trainer.resume",
    "trainer.resume_changes",
    "trainer.grad_spike_factor",  # a safety check: it stops a run, never changes what a step does
    "trainer.overwrite",
    "trainer.checkpoint_every_steps",
    "trainer.num_threads",
    "trainer.compile",  # the same arithmetic, compiled
    "trainer.eval_batch_size",
    "trainer.host_malloc",
    "trainer.memory",
    "dataset.reader.root",  # where the files are, not what they hold (the cache key covers their contents)
)
#: The callbacks that decide what is trained, selected and saved as the result: recipe, though under ``callbacks``
#: (the longest prefix that matches a key decides between these and :data:`OPERATIONAL_KEYS`).
RECIPE_CALLBACKS = ("callbacks.averaging", "callbacks.selection", "callbacks.checkpointing")
#: Config keys renamed since a checkpoint may have been written: ``old key -> new key``. A stored config's old key
#: is compared as the new one, so runs started before the rename still resume.
RENAMED_KEYS = {"trainer.activation_checkpointing": "trainer.recompute"}


def non_finite_keys(state: Any, prefix: str = "") -> list[str]:
    """Dotted keys of every floating tensor (or float) in a nested state that holds NaN or infinity."""
    leaves = dict(_leaves(state, prefix))
    if _all_finite(leaves.values()):  # the usual answer, in one reduction per device instead of one per tensor
        return []
    return [key for key, value in leaves.items() if not _finite(value)]


def _leaves(state: Any, prefix: str) -> Iterator[tuple[str, torch.Tensor | float]]:
    """(dotted key, value) of every tensor and float in a nest of dicts, lists and tuples."""
    if isinstance(state, (torch.Tensor, float)):
        yield prefix, state
        return
    if isinstance(state, dict):
        items: Iterable = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return
    for key, value in items:
        yield from _leaves(value, f"{prefix}.{key}" if prefix else str(key))


def _finite(value: torch.Tensor | float) -> bool:
    if isinstance(value, torch.Tensor):
        return not value.is_floating_point() or bool(torch.isfinite(value).all())
    return math.isfinite(value)


def _all_finite(values: Iterable[torch.Tensor | float]) -> bool:
    """True when no floating tensor or float holds NaN or infinity. A sum is NaN or infinite whenever one of its
    terms is, so one check of all tensors' sums per device suffices; False may also mean that a sum of finite
    values overflowed, so the caller then checks each value."""
    sums: dict[torch.device, list[torch.Tensor]] = {}
    for value in values:
        if isinstance(value, float):
            if not math.isfinite(value):
                return False
        elif value.is_floating_point():
            sums.setdefault(value.device, []).append(value.sum(dtype=torch.float32))
    return all(bool(torch.isfinite(torch.stack(device_sums)).all()) for device_sums in sums.values())


class Checkpointer:
    """Writes checkpoints into one folder; remembers the last good one for error messages, and what it wrote as
    ``best.pt`` for :meth:`read`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.last_good: tuple[Path, int] | None = None  # (path, step) of the newest checkpoint written
        # name -> (the file's identity as written, a copy of the state's model and epoch): see read()
        self._written: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}

    def save(self, state: dict[str, Any], name: str, *more: str) -> Path:
        """Write ``state`` as ``name`` (and as each of ``more``, from the same serialisation); refuse a non-finite
        state (the files on disk stay as they were). Returns the path of ``name``.

        The model, optimizer and scaler tensors are checked (the only parts that can turn non-finite);
        the history's NaN placeholders for "not measured" are allowed.
        """
        bad = [k for part in ("model", "optimizer", "scaler") for k in non_finite_keys(state.get(part), part)]
        if bad:
            kept = (
                f"; the last good checkpoint {self.last_good[0]} (step {self.last_good[1]}) is untouched"
                if (self.last_good)
                else ""
            )
            raise NonFiniteError(
                f"step {state.get('step')}: the training state holds NaN or infinite values ({', '.join(bad[:3])}"
                f"{' ...' if len(bad) > 3 else ''}), so {name} was not written{kept}. Lower the learning rate "
                "or set trainer.grad_clip, then resume from the last good checkpoint or start again."
            )
        # Serialised in memory first: a full disk then fails in a plain file write (a clear OSError) instead of
        # inside torch's zip writer ("unexpected pos ...").
        buffer = io.BytesIO()
        torch.save(state, buffer)
        for each in (name, *more):
            self._write(buffer.getbuffer(), each)
        if BEST in (name, *more):
            model = {key: value.detach().to("cpu", copy=True) for key, value in state["model"].items()}
            self._written[BEST] = (_identity(self.folder / BEST), {"model": model, "epoch": state.get("epoch")})
        self.last_good = (self.folder / name, int(state.get("step", 0)))
        return self.folder / name

    def read(self, name: str) -> dict[str, Any]:
        """The ``model`` and ``epoch`` of checkpoint ``name``: from memory when this checkpointer wrote the file and
        it is unchanged since (same inode, size and modification time), else read from the file. Reading a
        checkpoint back costs a tenth of a second or more (torch's weights-only unpickler is Python), once per run."""
        path = self.folder / name
        written = self._written.get(name)
        if written is not None and path.is_file() and written[0] == _identity(path):
            return written[1]
        return load_checkpoint(path)

    def _write(self, data: memoryview, name: str) -> None:
        path = self.folder / name

        def write(tmp: Path) -> None:
            tmp.write_bytes(data)
            if name == LAST and path.exists():  # the new file is complete: move the old one aside
                path.replace(self.folder / PREVIOUS)

        atomic_write(path, write)


def _identity(path: Path) -> tuple[int, int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_size, stat.st_mtime_ns


def resume_path(resume: str | None, run_dir: str | Path) -> Path | None:
    """The checkpoint ``trainer.resume`` points at: ``null`` = fresh start; ``auto`` = the run dir's
    ``checkpoints/last.pt`` (or ``previous.pt`` when only that one exists), fresh start when there is none;
    anything else = that file, which must exist.
    """
    if resume in (None, "", "null", "none"):
        return None
    if resume == "auto":
        folder = Path(run_dir) / "checkpoints"
        for name in (LAST, PREVIOUS):
            if (folder / name).is_file():
                return folder / name
        return None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"trainer.resume={resume}: no such file (use null, auto or a checkpoint path)")
    return path


def resume_checkpoint(path: Path, current: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint to resume from: ``path``, or its ``previous.pt`` when ``path`` is unreadable; its recipe
    must equal ``current``'s (see :func:`recipe_differences`) except for the keys ``current`` names in
    ``trainer.resume_changes``, which are applied to it and recorded (:mod:`~gaitgraph.engine.resume_changes`)."""
    try:
        saved = load_checkpoint(path)
    except CheckpointError as err:
        fallback = path.with_name(PREVIOUS)
        if path.name != LAST or not fallback.is_file():
            raise
        log.warning("%s; resuming from the previous checkpoint %s instead", err, fallback)
        saved = load_checkpoint(fallback)
        path = fallback
    if saved.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {saved.get('format')!r}, this version resumes format {CHECKPOINT_FORMAT}; "
            "evaluate it with gaitgraph.evaluate or start a new run (model.pretrained can start from its weights)"
        )
    diffs = recipe_differences(saved.get("config", {}), current)
    permitted = resume_changes.allowed((current.get("trainer") or {}).get("resume_changes") or [], diffs)
    refused = [d for d in diffs if d[0] not in permitted]
    if refused:
        shown = "; ".join(f"{k}: {short_repr(a, 40)} -> {short_repr(b, 40)}" for k, a, b in refused[:8])
        more = f" (and {len(refused) - 8} more)" if len(refused) > 8 else ""
        raise CheckpointError(
            f"{path}: cannot resume, the recipe differs from the one it was trained with: {shown}{more}. "
            "Resume with the stored settings (see the run's .hydra/config.yaml), or start a new run in another "
            "directory (model.pretrained=<checkpoint> starts from its weights). A finished run is not extended. "
            f"Only {', '.join(RESUME_CHANGES)} may change on resume, when trainer.resume_changes names them."
        )
    if diffs:
        resume_changes.apply(saved, diffs, path)
    log.info("resuming from %s (epoch %d, step %d)", path, saved["epoch"], saved["step"])
    return saved


def recipe_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, stored value, current value)`` for every config key that defines the recipe and differs.

    Everything counts as recipe (data, keypoints, model, loss, optimizer, schedule, batch, sequence length,
    augmentation, epochs, seed, ...) except :data:`OPERATIONAL_KEYS`. Keys of ``stored`` that were renamed since
    (:data:`RENAMED_KEYS`) count under their new names. A config stored before the ``callbacks`` group has none of
    :data:`RECIPE_CALLBACKS`: its callbacks followed the ``trainer.*`` keys, which are compared, so those nodes are
    not.
    """
    a, b = _renamed(_flatten(stored)), _flatten(current)
    if not any(_longest_prefix(k, RECIPE_CALLBACKS) >= 0 for k in a):
        b = {k: v for k, v in b.items() if _longest_prefix(k, RECIPE_CALLBACKS) < 0}
    keys = sorted(set(a) | set(b))
    missing = object()
    return [
        (k, a.get(k, "<absent>"), b.get(k, "<absent>"))
        for k in keys
        if not _operational(k) and a.get(k, missing) != b.get(k, missing)
    ]


def check_run_dir(run_dir: Path, resume: str | None, overwrite: bool) -> None:
    """Refuse a fresh run (``resume`` null) where another run's checkpoints or results are; with
    ``overwrite`` remove them instead (said in the log). Nothing is changed when refusing. Call it holding the
    directory's claim (:func:`gaitgraph.engine.claim.acquire`): the check alone cannot see a run that started
    a moment ago and has written nothing yet."""
    if resume not in (None, "", "null", "none"):
        return
    used = [rel for rel in RUN_OUTPUTS if (Path(run_dir) / rel).exists()]
    if not used:
        return
    if overwrite:
        for rel in used:
            (Path(run_dir) / rel).unlink()
        log.warning("trainer.overwrite=true: removed %s of an earlier run in %s", ", ".join(used), run_dir)
        return
    raise RunDirInUseError(
        f"{run_dir} already holds a run ({', '.join(used)}); nothing was changed. To continue it: "
        "trainer.resume=auto; to keep it: choose another hydra.run.dir; to replace it: trainer.overwrite=true."
    )


def _renamed(flat: dict[str, Any]) -> dict[str, Any]:
    """``flat`` with every key of :data:`RENAMED_KEYS` (or below it) under its new name."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        for old, new in RENAMED_KEYS.items():
            if key == old or key.startswith(old + "."):
                key = new + key[len(old) :]
        out[key] = value
    return out


def _operational(key: str) -> bool:
    return _longest_prefix(key, OPERATIONAL_KEYS) > _longest_prefix(key, RECIPE_CALLBACKS)


def _longest_prefix(key: str, prefixes: tuple[str, ...]) -> int:
    return max((len(k) for k in prefixes if key == k or key.startswith(k + ".")), default=-1)


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: tree}
