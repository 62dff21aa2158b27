"""``python -m gaitgraph.predict ckpt_path=... input=<pose files or folders>``: enrol, then identify.

Reads the input with the dataset readers (``input_format``), preprocesses it as the checkpoint's dataset config
does, embeds every sequence with the checkpoint (``tta`` as in evaluate) and writes ``embeddings.h5``
(embeddings, the sequence metadata, the checkpoint path and hashes of its embedding config and weights). With
``gallery=`` (an ``embeddings.h5`` of an earlier predict with the same checkpoint, or ``split:<name>`` of the
checkpoint's dataset, then also written as ``gallery.h5``) it writes ``identities.csv``: per input sequence the
``top_k`` nearest gallery identities with their distances (gaitgraph.evaluation.identify).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gaitgraph.process_env  # noqa: F401 - sets the process environment before torch loads

from omegaconf import DictConfig
from rich.console import Console

from gaitgraph.cli import entry
from gaitgraph.errors import CheckpointError, ConfigError
from gaitgraph.utils import atomic_write, plain, run_dir_of

# torch, the engine, the evaluation and the data modules load in the functions that use them, when the task runs:
# --help, --cfg and shell completion import this file and answer at once (benchmarks/startup.py).
if TYPE_CHECKING:
    import numpy as np
    import torch

    from gaitgraph.data.poseset import PoseSet
    from gaitgraph.skeletons import Skeleton

log = logging.getLogger(__name__)


@dataclass
class Restored:
    """A checkpoint's model on its device, with what decides its embeddings."""

    model: torch.nn.Module
    skeleton: Skeleton
    dataset_cfg: DictConfig
    device: torch.device
    attrs: dict[str, Any]  # ckpt_path, config_hash, weights_hash: stored with every embeddings file


def restore(cfg: DictConfig, overrides: Sequence[str] | None = None) -> Restored:
    """Build the checkpoint's model with its stored config (as gaitgraph.evaluate does) and its weights."""
    from gaitgraph.engine.restore import restore_model

    restored = restore_model(cfg, overrides)
    attrs = {
        "ckpt_path": str(Path(cfg.ckpt_path).expanduser().resolve()),
        "config_hash": config_hash(restored.groups, bool(cfg.tta)),
        "weights_hash": weights_hash(restored.state["model"]),
        "tta": bool(cfg.tta),
    }
    return Restored(restored.model, restored.skeleton, restored.groups["dataset"], restored.device, attrs)


def config_hash(groups: dict[str, DictConfig], tta: bool) -> str:
    """SHA-256 of what decides an embedding besides the weights: model, keypoints, preprocessing, window, TTA."""
    dataset = groups["dataset"]
    parts = {
        "model": plain(groups["model"]),
        "keypoints": plain(groups["keypoints"]),
        "preprocess": plain(dataset.preprocess),
        "sequence_length": int(dataset.sequence_length),
        "tta": tta,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def weights_hash(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 of a state_dict's names and values."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        digest.update(name.encode())
        digest.update(state_dict[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def embed(cfg: DictConfig, run: Restored, poses: PoseSet) -> np.ndarray:
    """Embeddings [S, D] (part-based [S, D, P]) of every sequence, as gaitgraph.evaluate embeds the test split;
    NaN or infinite ones (a diverged model) are refused, naming the first such sequence."""
    from gaitgraph.evaluation.embed import embed_poseset, eval_length
    from gaitgraph.evaluation.metrics import normalized_embeddings

    embeddings = embed_poseset(
        run.model,
        poses,
        run.skeleton,
        eval_length(run.dataset_cfg),
        tta=bool(cfg.tta),
        batch_size=cfg.trainer.eval_batch_size,
        device=run.device,
    )
    normalized_embeddings(embeddings, poses.meta, cfg.distance)  # raises NonFiniteError on NaN / inf
    return embeddings


def dataset_split(name: str, cfg: DictConfig, run: Restored) -> PoseSet:
    """``split:<name>`` of the checkpoint's dataset: a subject split, or ``gallery`` = the gallery sequences of
    ``metric_protocol`` (the dataset's first protocol by default) on the test split, at the protocol's views."""
    from gaitgraph.data.cache import load_poses
    from gaitgraph.data.splits import resolve_split, split_by_subjects
    from gaitgraph.evaluation.pipeline import protocols_of
    from gaitgraph.evaluation.protocols import select

    poses = load_poses(run.dataset_cfg, run.skeleton, cfg.paths.cache_dir)
    splits = split_by_subjects(poses, resolve_split(run.dataset_cfg))
    allowed = f"split:<{'|'.join([*splits, 'gallery'])}> or an embeddings.h5 of an earlier predict"
    if name in splits:
        chosen = splits[name]
    elif name == "gallery":
        protocols = protocols_of(run.dataset_cfg)
        protocol = protocols.get(cfg.metric_protocol or next(iter(protocols)))
        if protocol is None:
            raise ConfigError("metric_protocol", cfg.metric_protocol, f"one of {list(protocols)}")
        test = splits["test"]
        views = protocol.resolve_views(test.meta)
        chosen = test.select(
            select(test.meta, protocol.gallery, f"protocol '{protocol.name}' gallery")
            & test.meta["view"].astype(str).isin(views).to_numpy()
        )
    else:
        raise ConfigError("gallery", f"split:{name}", allowed)
    if len(chosen) == 0:
        raise ConfigError("gallery", f"split:{name}", allowed, hint=f"it holds no sequence of '{run.dataset_cfg.name}'")
    return chosen


def load_gallery(cfg: DictConfig, run: Restored, run_dir: Path) -> tuple[np.ndarray, Any]:
    """The gallery's embeddings and metadata: a dataset split embedded now (and saved as gallery.h5), or an
    earlier predict's embeddings.h5, refused when another model or embedding config made it, when it is empty
    and when its values are not finite (:func:`~gaitgraph.evaluation.embedding_store.read_embeddings`)."""
    from gaitgraph.evaluation.embedding_store import read_embeddings, write_embeddings

    spec = str(cfg.gallery)
    if spec.startswith("split:"):
        poses = dataset_split(spec.removeprefix("split:"), cfg, run)
        embeddings = embed(cfg, run, poses)
        write_embeddings(run_dir / "gallery.h5", embeddings, poses.meta, run.attrs)
        return embeddings, poses.meta
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(
            "gallery", spec, "an embeddings.h5 of an earlier predict, or split:<name>", hint="no such file"
        )
    embeddings, meta, attrs = read_embeddings(path)
    mismatch = [k for k in ("weights_hash", "config_hash") if attrs.get(k) != run.attrs[k]]
    if mismatch:
        raise CheckpointError(
            f"gallery {path}: embedded by another model or embedding config ({', '.join(mismatch)} differ: its "
            f"checkpoint is {attrs.get('ckpt_path', 'unknown')}, tta={attrs.get('tta')}; this one is "
            f"{run.attrs['ckpt_path']}, tta={run.attrs['tta']}). Distances between the two mean nothing: enrol the "
            "gallery again with this checkpoint (gallery=split:<name>, or predict on the gallery files first)."
        )
    if len(embeddings) == 0:
        raise ConfigError(
            "gallery", spec, "an embeddings.h5 holding at least one sequence", hint="it holds none: enrol some first"
        )
    return embeddings, meta


def predict(cfg: DictConfig, overrides: Sequence[str] | None = None) -> dict[str, Path]:
    """Embed ``cfg.input`` (and identify it against ``cfg.gallery``); returns the written files by name."""
    from gaitgraph.data.user_poses import read_input
    from gaitgraph.evaluation.embedding_store import write_embeddings
    from gaitgraph.evaluation.identify import identify, identities_table

    if cfg.input is None:
        raise ConfigError("input", None, "pose files or folders", hint="e.g. input=data/psymo10 or input=[a.csv,b.csv]")
    if cfg.gallery is not None and (not isinstance(cfg.top_k, int) or cfg.top_k < 1):
        raise ConfigError("top_k", cfg.top_k, "an integer >= 1 (identities written per probe)")
    run_dir, console = run_dir_of(cfg), Console()
    run = restore(cfg, overrides)
    poses = read_input(plain(cfg.input), str(cfg.input_format), run.dataset_cfg, run.skeleton)
    log.info("embedding %d sequences with %s", len(poses), cfg.ckpt_path)
    embeddings = embed(cfg, run, poses)
    written = {"embeddings": write_embeddings(run_dir / "embeddings.h5", embeddings, poses.meta, run.attrs)}
    console.print(f"embedded {len(poses)} sequences -> {written['embeddings']}", markup=False, highlight=False)
    if cfg.gallery is not None:
        gallery, gallery_meta = load_gallery(cfg, run, run_dir)
        if gallery.shape[1:] != embeddings.shape[1:]:
            raise CheckpointError(
                f"gallery {cfg.gallery}: its embeddings are {list(gallery.shape[1:])} per sequence, this checkpoint's "
                f"{list(embeddings.shape[1:])}: enrol the gallery again with this checkpoint"
            )
        found, distances = identify(embeddings, gallery, gallery_meta["subject"], cfg.top_k, cfg.distance)
        table = identities_table(poses.meta, found, distances)
        written["identities"] = atomic_write(run_dir / "identities.csv", lambda tmp: table.to_csv(tmp, index=False))
        console.print(
            f"identified {len(poses)} sequences against {len(gallery)} gallery sequences "
            f"({gallery_meta['subject'].nunique()} identities, {cfg.distance} distance) -> {written['identities']}",
            markup=False,
            highlight=False,
        )
    return written


@entry("predict")
def main(cfg: DictConfig) -> None:
    """Hydra entry point."""
    predict(cfg)


if __name__ == "__main__":
    main()
