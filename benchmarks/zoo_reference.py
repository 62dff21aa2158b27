"""The zoo's training step against FastPoseGait's own code (the reference implementation of GaitGraph1, GaitTR and
GPGait), at each family's CASIA-B recipe batch (:data:`benchmarks.zoo.RECIPES`), 60 frames, COCO-17, as ratios
project / reference measured in the same run.

The reference (BNU-IVC/FastPoseGait at :data:`COMMIT`) is imported at run time from a checkout named by
``--ref PATH`` or ``FASTPOSEGAIT_REF``, with the stand-in modules of ``tests/models/data/record_fastposegait.py``
(torchvision, cv2, einops, pytorch_metric_learning are not needed for a step); none of its code is in this
repository. Its step is what its ``run_train`` loop does per batch: its input transforms per sequence in numpy
(``inputs_pretreament``: the evaluation transforms of its config, i.e. its features without the augmentation),
its network's forward in training mode, its loss (its config's: SupCon for GaitGraph1, batch-hard triplet for
GaitTR, triplet + cross-entropy for GPGait; called without the DDP gather of its loss wrapper), backward, its
optimizer (Adam as its config sets it) and OneCycle scheduler step. GaitGraph1's reference trains on two views per
sequence (its network sees N x 2 sequences of 60 frames); it is given batch / 2 sequences of two views, so both
networks see ``batch`` sequences of 60 frames. The project's step is :func:`benchmarks.zoo.training_steps`
(features, forward, the recipe's loss, backward, Adam; augmentation excluded on both sides).

Each measurement is a fresh subprocess (its peak RSS, VmHWM, is its own): warm-up steps, then the median of the
timed steps (wall seconds, CPU seconds of every thread). Rounds interleave reference and project variants. The
reference runs as shipped: torch's allocator on 4 KiB pages (``THP_MEM_ALLOC_ENABLE=0``) and glibc's own malloc
thresholds. The project's variants (:data:`VARIANTS`) set the host-memory knobs: huge pages for large tensors at
process start, ``trainer.host_malloc`` (glibc thresholds, and huge pages off per run), ``trainer.recompute``. Both
sides sleep rather than spin in OpenMP waits (the platform's ``OMP_WAIT_POLICY``), the same torch threads.

``python -m benchmarks.zoo_reference [--ref PATH] [--out FILE] [--families ...] [--variants ...] [--rounds N]
[--smoke]``; ``scripts/benchmark.py zoo_reference``.
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np

from benchmarks import (
    CPU_AS_LIMIT,
    StepClock,
    exit_if_missing,
    json_from_subprocess,
    reference_checkout,
    step_summary,
)
from benchmarks.zoo import RECIPES, SEQUENCE_LENGTH

COMMIT = "94da9c82df72b94c342ca8c6366e90578ea8e1ae"
REPOSITORY = "https://github.com/BNU-IVC/FastPoseGait"
ENV_VAR = "FASTPOSEGAIT_REF"
#: family -> FastPoseGait config (its model, loss, optimizer and scheduler are read from it).
CONFIGS = {
    "gaitgraph1": "configs/gaitgraph1/gaitgraph1_phase1.yaml",
    "gaittr": "configs/gaittr/gaittr.yaml",
    "gpgait": "configs/gpgait/gpgait.yaml",
}
#: Warm-up and timed steps of every measurement; the smoke size (batch, frames) runs the code paths in seconds.
WARMUP, STEPS = 2, 3
SMOKE = {"shape": (8, 16), "warmup": 1, "steps": 2}
#: The reference's process: torch's allocator on 4 KiB pages, as torch ships.
REFERENCE_ENV = {"THP_MEM_ALLOC_ENABLE": "0"}
#: Project variant -> (THP_MEM_ALLOC_ENABLE at process start, trainer.host_malloc, trainer.recompute).
#: host_malloc ``None``: glibc's own thresholds; ``"family"``: the family's declared policy (GaitModel.host_malloc).
VARIANTS = {
    "glibc_4k": ("0", None, False),
    "platform": ("1", {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047}, False),
    "thp_only": ("1", None, False),
    "malloc_4k": ("0", {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047}, False),
    "thp_off_per_run": ("1", {"huge_pages": False}, False),
    "malloc_thp_off_per_run": ("1", {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047, "huge_pages": False}, False),
    "family": ("1", "family", False),
}
#: What a plain run measures: each family's declared policy against the reference (``--variants`` adds others).
DEFAULT_VARIANTS = ("family",)


def checkout(path: str | Path | None = None) -> Path:
    """The reference's checkout: ``path``, else ``$FASTPOSEGAIT_REF``, checked to hold its model code. Raises
    :class:`MissingReference` with a one-paragraph fix."""
    what = "The zoo reference benchmark runs FastPoseGait's own networks"
    return reference_checkout(path, ENV_VAR, "fastposegait/modeling/models/gpgait.py", what, REPOSITORY, COMMIT)


def run(
    out_json: str | Path | None = None,
    ref: str | Path | None = None,
    scale: str = "full",
    families: list[str] | None = None,
    variants: list[str] | None = None,
    rounds: int = 2,
) -> dict:
    """Measure the reference and the project's ``variants`` (default :data:`DEFAULT_VARIANTS`) for each family,
    ``rounds`` times interleaved, each in its own subprocess; write and return the results with the ratios
    project / reference."""
    root = checkout(ref)
    from gaitgraph import process_env  # the OpenMP wait policy every subprocess inherits
    from gaitgraph.utils import write_json

    smoke = SMOKE if scale == "small" else {"shape": None, "warmup": WARMUP, "steps": STEPS}
    results = {}
    for family in families or list(RECIPES):
        runs: dict[str, list[dict]] = {}
        for _ in range(rounds):
            runs.setdefault("reference", []).append(_reference(root, family, smoke))
            for name in variants or DEFAULT_VARIANTS:
                runs.setdefault(name, []).append(_project(family, name, smoke))
        results[family] = {"runs": runs, "summary": summarize(runs)}
    shape = smoke["shape"] or "recipe"
    out = {
        "recipe": {"shape": shape, "sequence_length": SEQUENCE_LENGTH, "warmup": smoke["warmup"], "rounds": rounds},
        "steps": smoke["steps"],
        "reference": {"path": str(root), "commit": COMMIT, "environment": REFERENCE_ENV},
        "variants": {k: {"thp": v[0], "host_malloc": v[1], "recompute": v[2]} for k, v in VARIANTS.items()},
        "environment": {name: os.environ.get(name) for name in process_env.DEFAULTS},
        "families": results,
    }
    if out_json is not None:
        write_json(out, out_json)
    return out


def summarize(runs: dict[str, list[dict]]) -> dict:
    """Per variant, the median over rounds of samples/s, CPU seconds of a step and peak RSS; for project variants
    the ratios to the reference (speed > 1 and peak RSS < 1: the project is faster and smaller) and whether both
    hold."""
    out = {}
    for name, measured in runs.items():
        ok = [m for m in measured if "error" not in m]
        if not ok:
            out[name] = {"error": measured[0].get("error")}
            continue
        out[name] = {
            key: round(statistics.median(m[key] for m in ok), 3)
            for key in ("samples_per_s", "median_cpu_s", "peak_rss_mb")
        }
    base = out.get("reference", {})
    if "samples_per_s" not in base:
        return out
    for name, v in out.items():
        if name == "reference" or "samples_per_s" not in v:
            continue
        speed = v["samples_per_s"] / base["samples_per_s"]
        v["ratio"] = {
            "speed": round(speed, 2),
            "cpu_speed": round(base["median_cpu_s"] / v["median_cpu_s"], 2),
            "peak_rss": round(v["peak_rss_mb"] / base["peak_rss_mb"], 2),
        }
        v["faster_and_smaller"] = speed >= 1 and v["peak_rss_mb"] < base["peak_rss_mb"]
    return out


def _reference(root: Path, family: str, size: dict) -> dict:
    call = f"measure_reference({str(root)!r}, {family!r}, {size!r})"
    code = f"from benchmarks.zoo_reference import measure_reference; {call}"
    return json_from_subprocess(code, REFERENCE_ENV)


def _project(family: str, variant: str, size: dict) -> dict:
    thp, _, _ = VARIANTS[variant]
    code = f"from benchmarks.zoo_reference import measure_project; measure_project({family!r}, {variant!r}, {size!r})"
    return json_from_subprocess(code, {"THP_MEM_ALLOC_ENABLE": thp})


def measure_project(family: str, variant: str, size: dict) -> None:
    """In a fresh process: the project's steps under ``variant``'s host-memory settings; prints one JSON line."""
    import resource

    from benchmarks.zoo import training_steps
    from gaitgraph.engine.host_malloc import AUTO, configure_host_memory, resolve_host_malloc

    resource.setrlimit(resource.RLIMIT_AS, (CPU_AS_LIMIT, CPU_AS_LIMIT))
    _, malloc, recompute = VARIANTS[variant]
    if malloc == "family":  # as a run with trainer.host_malloc=auto resolves it
        malloc = resolve_host_malloc(AUTO, _model_class(family))
    applied = configure_host_memory(malloc)
    out = training_steps(family, "cpu", recompute, size["warmup"], size["steps"], size["shape"])
    print(json.dumps({"variant": variant, "host_memory": applied, "recompute": recompute, **out}))


def _model_class(family: str) -> type:
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from gaitgraph import CONF_DIR

    return get_class(OmegaConf.load(CONF_DIR / "model" / f"{family}.yaml")._target_)


def measure_reference(root: str, family: str, size: dict) -> None:
    """In a fresh process: the reference's training steps (its features, forward, loss, backward, optimizer and
    scheduler step) at the family's recipe batch; prints one JSON line."""
    import resource

    import torch

    resource.setrlimit(resource.RLIMIT_AS, (CPU_AS_LIMIT, CPU_AS_LIMIT))
    torch.manual_seed(0)
    net, chain, loss_fn, optimizer, scheduler = reference_training(Path(root), family)
    _, batch, subjects = RECIPES[family]
    batch, frames = size["shape"] or (batch, SEQUENCE_LENGTH)
    views = 2 if family == "gaitgraph1" else 1  # its two-view training: batch / 2 sequences of 2 x frames
    sequences = batch // views
    labels = torch.arange(sequences) % max(1, subjects // views)
    clock = StepClock()
    for _ in range(size["warmup"] + size["steps"]):
        poses = _raw_poses(sequences, frames * views)
        with clock.step():
            x = torch.from_numpy(np.asarray([_apply(chain, seq) for seq in poses])).float().requires_grad_()
            out = net(([x], labels, None, None, None))["training_feat"]
            loss = sum(fn(**out[key]) for key, fn in loss_fn.items())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    parameters = sum(p.numel() for p in net.parameters() if p.requires_grad)
    summary = step_summary(batch, clock.wall[size["warmup"] :], "cpu", clock.cpu[size["warmup"] :])
    print(json.dumps({"batch_size": batch, "parameters": parameters, **summary}))


def reference_training(root: Path, family: str) -> tuple:
    """The reference's network (float32, training mode), feature transforms, losses (name -> callable returning
    the weighted mean loss), optimizer and scheduler, as its config builds them."""
    import torch
    import yaml

    from tests.models.data.record_fastposegait import OPTIONS, build_reference, import_reference

    models, transforms = import_reference(root)
    cfg = yaml.safe_load((root / CONFIGS[family]).read_text())
    net = build_reference(models, cfg["model_cfg"]).float().train()
    chain = [getattr(transforms, name)(**kwargs) for name, kwargs in OPTIONS[family][2]]
    losses = importlib.import_module("modeling.losses")  # on the path import_reference set
    loss_cfgs = cfg["loss_cfg"] if isinstance(cfg["loss_cfg"], list) else [cfg["loss_cfg"]]
    loss_fn = {c["log_prefix"]: _loss(losses, c) for c in loss_cfgs}
    opt_cfg = cfg["optimizer_cfg"]
    solver = getattr(torch.optim, opt_cfg["solver"])
    optimizer = solver(net.parameters(), **_valid(solver, opt_cfg))
    sched_cfg = cfg["scheduler_cfg"]
    scheduler_cls = getattr(torch.optim.lr_scheduler, sched_cfg["scheduler"])
    scheduler = scheduler_cls(optimizer, **_valid(scheduler_cls, sched_cfg))
    return net, chain, loss_fn, optimizer, scheduler


def _loss(losses, cfg: dict):
    """The reference's loss of ``cfg`` as its LossAggregator weighs it, without the DDP gather wrapper."""
    cls = getattr(losses, cfg["type"])
    fn = cls(**_valid(cls, cfg))
    forward = getattr(cls.forward, "__wrapped__", cls.forward)  # gather_and_scale_wrapper needs a process group

    def weighted(**inputs):
        return forward(fn, **inputs)[0].mean() * fn.loss_term_weight

    return weighted


def _valid(fn, cfg: dict) -> dict:
    names = inspect.signature(fn).parameters
    return {k: v for k, v in cfg.items() if k in names}


def _raw_poses(n: int, frames: int):
    """``n`` random COCO-17 sequences in raw pixels (x < 320, y < 240, confidence < 1), float32 numpy."""
    rng = np.random.default_rng(0)
    return (rng.random((n, frames, 17, 3)) * np.array([320.0, 240.0, 1.0])).astype(np.float32)


def _apply(chain: list, seq):
    for step in chain:
        seq = step(seq)
    return seq


def main(argv: list[str]) -> None:
    """``python -m benchmarks.zoo_reference``: run, print the JSON; a missing checkout exits 2 with its fix."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.zoo_reference", description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help=f"FastPoseGait checkout (default: ${ENV_VAR})")
    parser.add_argument("--out", help="JSON file to write")
    parser.add_argument("--families", nargs="+", choices=list(RECIPES))
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help=f"batch {SMOKE['shape'][0]}, {SMOKE['shape'][1]} frames")
    args = parser.parse_args(argv)
    with exit_if_missing():
        result = run(args.out, args.ref, "small" if args.smoke else "full", args.families, args.variants, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
