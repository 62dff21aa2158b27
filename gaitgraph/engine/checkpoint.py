"""Atomic checkpoints that load with ``torch.load(weights_only=True)``."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import torch

from gaitgraph.utils import atomic_write


def save_checkpoint(state: dict[str, Any], path: str | Path) -> None:
    """Write ``state`` to ``path`` via a temp file and an atomic rename (never half-written)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint on the CPU with the safe unpickler."""
    return torch.load(Path(path), map_location="cpu", weights_only=True)


def rng_state() -> dict[str, Any]:
    """Python and torch RNG states (numpy randomness lives in explicit Generators we save ourselves)."""
    state: dict[str, Any] = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resume_path(resume: str | None, run_dir: str | Path) -> Path | None:
    """The checkpoint ``trainer.resume`` points at: ``null`` = fresh start; ``auto`` = the run dir's
    ``checkpoints/last.pt`` when it exists (fresh start otherwise); anything else = that file, which must exist.
    """
    if resume in (None, "", "null", "none"):
        return None
    if resume == "auto":
        last = Path(run_dir) / "checkpoints" / "last.pt"
        return last if last.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"trainer.resume: checkpoint {path} does not exist (use null, auto or a file)")
    return path
