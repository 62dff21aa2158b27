"""Training throughput benchmark: GaitGraph2's CASIA-B recipe on CASIA-B-shaped synthetic data.

n21-r8, batch 768, T=60, COCO-17, SupCon(0.01), AdamW(5e-3, wd 1e-5) + OneCycle, and the full data side
(window gather + the augmentation pipeline + multi-input, batched on the training device). Each variant runs in a fresh
subprocess so its peak RSS is its own. Variants: torch and glibc as shipped (4 KiB pages, glibc's thresholds);
the platform's defaults (large tensors on transparent huge pages, ``gaitgraph/process_env.py``, and
``trainer.host_malloc`` from conf/trainer/default.yaml, ``gaitgraph/engine/host_malloc.py``); and glibc keeping
every freed block; with and without activation recomputation (``trainer.recompute``).
A few warm-up steps, then the median step time.
``python -m benchmarks.train [out.json] [cpu|cuda]``.
"""

from __future__ import annotations

import functools
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import gaitgraph.process_env  # noqa: F401 - the environment a command runs with, before torch loads

from omegaconf import OmegaConf

from benchmarks import CPU_AS_LIMIT, json_from_subprocess, step_summary
from gaitgraph import CONF_DIR
from gaitgraph.utils import write_json

#: torch's CPU allocator on plain 4 KiB pages (what torch does without the package default).
SMALL_PAGES = {"THP_MEM_ALLOC_ENABLE": "0"}
#: glibc keeping every freed block (mmap threshold and trim threshold at their 2 GiB maximum).
KEEP_ALL = {"mmap_threshold_mb": 2047, "trim_threshold_mb": 2047}
#: name -> (extra environment, activation recompute, trainer.host_malloc; "config" = conf/trainer/default.yaml's)
VARIANTS = {
    "glibc_4k_pages": (SMALL_PAGES, False, None),
    "glibc_4k_pages+recompute": (SMALL_PAGES, True, None),
    "default": ({}, False, "config"),
    "default+recompute": ({}, True, "config"),
    "keep_all+recompute": ({}, True, KEEP_ALL),
}
RECIPE = {"batch_size": 768, "sequence_length": 60, "warmup": 2, "steps": 5}
#: CASIA-B training side (74 subjects x 110 walks of ~100 frames) as the reference trains on it.
DATA = {"subjects": 74, "per_subject": 110, "frames": 100}


def run(out_json: str | Path | None = None, device: str = "cpu", variants: list[str] | None = None) -> dict:
    """Measure every variant (or ``variants``) in its own subprocess; write and return the results."""
    results = {}
    for name in variants or list(VARIANTS):
        env_extra, recompute, malloc = VARIANTS[name]
        if malloc == "config":
            malloc = default_malloc()
        results[name] = _in_subprocess(device, recompute, env_extra, malloc)
        results[name].update(env=env_extra, host_malloc=malloc)
    out = {
        "recipe": {
            **RECIPE,
            "model": "resgcn-n21-r8",
            "keypoints": "coco17",
            "optimizer": "AdamW+OneCycle",
            "device": device,
            "data": DATA,
        },
        "variants": results,
    }
    if out_json is not None:
        write_json(out, out_json)
    return out


def default_malloc() -> dict:
    """``trainer.host_malloc`` as conf/trainer/default.yaml sets it for GaitGraph2 (the platform's default)."""
    from gaitgraph.engine.host_malloc import resolve_host_malloc
    from gaitgraph.models.resgcn import ResGCN

    return resolve_host_malloc(OmegaConf.load(CONF_DIR / "trainer" / "default.yaml").host_malloc, ResGCN)


def _in_subprocess(device: str, recompute: bool, env_extra: dict[str, str], malloc: dict | None) -> dict:
    code = f"from benchmarks.train import measure; measure({device!r}, {recompute!r}, {malloc!r})"
    return json_from_subprocess(code, env_extra)


@functools.cache
def synthetic_poses(seed: int = 0):
    """CASIA-B-shaped PoseSet: walking-like COCO-17 sequences around a per-subject body, raw pixel units."""
    import numpy as np

    from gaitgraph.data.poseset import PoseSet

    rng = np.random.default_rng(seed)
    n = DATA["subjects"] * DATA["per_subject"]
    lengths = rng.integers(DATA["frames"] - 30, DATA["frames"] + 30, size=n)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    body = rng.normal(0, 15, size=(DATA["subjects"], 17, 2))
    subject = np.repeat(np.arange(DATA["subjects"]), DATA["per_subject"])
    t = np.concatenate([np.arange(length) for length in lengths])
    seq = np.repeat(np.arange(n), lengths)
    xy = 160 + body[subject[seq]] + 10 * np.sin(t / 4.0)[:, None, None] + rng.normal(0, 2, (len(t), 17, 2))
    frames = np.concatenate([xy, rng.uniform(0.3, 1.0, (len(t), 17, 1))], axis=-1).astype(np.float32)
    meta = [
        {
            "subject": int(s),
            "condition": "nm",
            "seq": int(i % DATA["per_subject"]),
            "view": "000",
            "n_frames": int(length),
            "source": "synthetic",
        }
        for i, (s, length) in enumerate(zip(subject, lengths))
    ]
    return PoseSet(frames, offsets, __import__("pandas").DataFrame(meta))


def measure(
    device: str = "cpu",
    recompute: bool | str = False,
    malloc: dict | None = None,
    amp: bool = False,
    recipe: dict | None = None,
    threads: int | None = None,
) -> None:
    """One variant in this fresh process; prints one JSON line (samples/s, step times, CPU seconds, peak RSS).

    ``malloc``: ``trainer.host_malloc`` settings applied as train() does (None = glibc's own); ``amp`` as
    ``trainer.amp``; ``recipe``: batch_size, sequence_length, warmup and steps (default :data:`RECIPE`);
    ``threads``: torch's intra-op threads (None = torch's own choice).
    """
    recipe = recipe or RECIPE
    if device == "cpu":
        resource.setrlimit(resource.RLIMIT_AS, (CPU_AS_LIMIT, CPU_AS_LIMIT))
    import torch

    from gaitgraph.engine.host_malloc import configure_host_memory

    if threads is not None:
        torch.set_num_threads(threads)
    configure_host_memory(malloc)
    n_steps, warmup = recipe["warmup"] + recipe["steps"], recipe["warmup"]
    times = train_step_times(device, recompute, recipe["batch_size"], recipe["sequence_length"], n_steps, amp)
    summary = step_summary(recipe["batch_size"], times["wall"][warmup:], device, times["cpu"][warmup:])
    print(json.dumps({"recompute": recompute, "amp": amp, **summary}))


def resgcn_n21_r8():
    """GaitGraph2's network (n21-r8, embedding 128) on COCO-17, as ``model=resgcn_n21_r8`` builds it."""
    from hydra import compose, initialize_config_module

    from gaitgraph.models.resgcn import ResGCN
    from gaitgraph.utils import build

    with initialize_config_module("gaitgraph.conf", version_base="1.3"):
        skeleton = build(compose("train").keypoints)
    return ResGCN(skeleton, [1, 1, 1, 1], "Bottleneck", 8, 128)


def train_steps(*args: Any, **kwargs: Any) -> list[float]:
    """Seconds of each optimisation step: :func:`train_step_times` (same arguments), its ``wall`` list."""
    return train_step_times(*args, **kwargs)["wall"]


def train_step_times(
    device: str,
    recompute: bool | str,
    batch_size: int,
    sequence_length: int,
    n_steps: int,
    amp: bool | str = False,
    compiled: bool = False,
) -> dict[str, list[float]]:
    """``n_steps`` optimisation steps of n21-r8 on synthetic CASIA-B poses, through the platform's own Trainer
    (augmentation, multi-input, SupCon, AdamW + OneCycle), as train() runs them; ``amp`` and ``compiled`` as
    ``trainer.amp`` (bf16) and ``trainer.compile``, ``recompute`` as ``trainer.recompute`` (false, true or partial).
    Each step's wall seconds (``wall``) and this process's CPU seconds
    (``cpu``, all its threads: user + system)."""
    import tempfile

    import torch
    from hydra import compose, initialize_config_module

    from gaitgraph.data.batches import WindowBatches
    from gaitgraph.engine.budget import SETTINGS
    from gaitgraph.engine.build import build_precision, compile_forward
    from gaitgraph.engine.callbacks import Callback
    from gaitgraph.engine.checkpoint import Checkpointer
    from gaitgraph.engine.recompute import recompute_activations
    from gaitgraph.engine.state import TrainState
    from gaitgraph.engine.trainer import Trainer
    from gaitgraph.models.losses import SupConLoss
    from gaitgraph.utils import build

    class Stamps(Callback):
        def __init__(self) -> None:
            self.times = [(time.perf_counter(), time.process_time())]

        def on_train_batch_end(self, trainer: Trainer, metrics: dict) -> None:
            if trainer.device.type == "cuda":
                torch.cuda.synchronize()
            self.times.append((time.perf_counter(), time.process_time()))

    with initialize_config_module("gaitgraph.conf", version_base="1.3"):
        cfg = compose("train", overrides=[f"trainer.amp={str(amp).lower()}"])
    torch.manual_seed(0)
    dev = torch.device(device)
    model = resgcn_n21_r8().to(dev)
    if recompute:
        recompute_activations(model, SETTINGS[recompute])
    batches = WindowBatches(synthetic_poses(), sequence_length, batch_size, seed=0, limit=n_steps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-3, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=5e-3, total_steps=200 * n_steps)
    state = TrainState(model, optimizer, batches, torch.Generator(device=dev).manual_seed(1), {}, scheduler)
    stamps = Stamps()
    with tempfile.TemporaryDirectory() as tmp:
        Trainer(
            state,
            model=compile_forward(model, compiled),
            loss_fn=SupConLoss(0.01),
            augment=build(cfg.augmentation),
            epochs=1,
            device=dev,
            checkpointer=Checkpointer(tmp),
            callbacks=[stamps],
            precision=build_precision(cfg, dev),
        ).fit()
    pairs = list(zip(stamps.times, stamps.times[1:]))
    return {"wall": [b[0] - a[0] for a, b in pairs], "cpu": [b[1] - a[1] for a, b in pairs]}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else None, args[1] if len(args) > 1 else "cpu"), indent=2))
