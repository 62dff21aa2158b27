"""Training speed against the original GaitGraph2 code, measured in the same run: GaitGraph2's CASIA-B recipe
(resgcn-n21-r8 with joint/velocity/bone inputs, COCO-17, batch 768, 60 frames, SupCon at temperature 0.01,
AdamW 5e-3 with weight decay 1e-5 + OneCycle, the training augmentation) on the CPU, as ratios project / original.

The original (tteepe/GaitGraph2 at :data:`COMMIT`) is imported at run time from a checkout named by ``--ref PATH``
or ``GAITGRAPH2_REF``; none of its code is in this repository. It needs ``torch_geometric`` (its dataset and
transforms) and ``pytorch-metric-learning`` (its loss) importable. Its training script is a pytorch-lightning CLI
whose data module also needs torchvision; the step itself needs neither, so :func:`measure_original` runs the
LightningModule's ``training_step`` (forward, SupConLoss, zero_grad, backward, AdamW step, per-step OneCycleLR)
with plain torch around the original's own modules, built as its CASIA-B config builds them:
``ResGCN("resgcn-n21-r8")`` over ``Graph("coco")`` with 3 input branches of 5 channels (``multi_branch=True``:
with the script's default False its CASIA-B training crashes, its issue #6), its ``SupConLoss`` with
``LpDistance``, and its ``CASIABPose`` dataset with ``CASIABPoseModule``'s training transforms in their order
(applied one after the other, as torchvision's ``Compose`` does). Its data is the project's synthetic CASIA-B CSV
(the 74 training subjects, ``casia-b_pose_coco.csv`` layout), which its dataset parses once into its processed
file before the timed process starts. Its DataLoader runs with ``num_workers=0``: the config's 8 workers would
move the data side onto other cores, and the project's step does its data side in the timed process too.

The project's variants run through ``benchmarks/train.py``'s ``measure`` on its synthetic CASIA-B poses (the
same 74 x 110 walks of ~100 frames) with the platform defaults (huge pages, ``trainer.host_malloc``): float32,
``trainer.amp=true`` (bf16 autocast, ``gaitgraph/engine/cpu.py``), ``trainer.recompute`` and both, and bf16 with
``trainer.recompute=partial`` (only each bottleneck's widening 1x1 convolution and BatchNorm). The original
runs in the same process environment as the project (``gaitgraph/process_env.py``: large tensors on huge pages,
OpenMP threads that sleep rather than spin while they wait), so the ratios are the code's, not those variables'.

Each variant runs in a fresh subprocess (its peak RSS, VmHWM, is its own) with the same batch, frames and torch
threads; warm-up steps, then the median step: samples/s, CPU seconds of a step (user + system, every thread:
steadier than wall time on a shared machine) and peak RSS. ``python -m benchmarks.reference [--ref PATH]
[--out FILE] [--smoke] [--batch N] [--threads N] [--rounds N]``; ``scripts/benchmark.py reference``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import MissingReference, StepClock, exit_if_missing, json_from_subprocess, reference_checkout

#: The original's commit this benchmark is written against (its last; 2022-04-19).
COMMIT = "0c619f370574baf9b0fa62af583588375c896e7c"
REPOSITORY = "https://github.com/tteepe/GaitGraph2"
ENV_VAR = "GAITGRAPH2_REF"
#: Import name -> pip name of what the original's step needs besides torch.
PACKAGES = {"torch_geometric": "torch_geometric", "pytorch_metric_learning": "pytorch-metric-learning"}
RECIPE = {"batch_size": 768, "sequence_length": 60, "warmup": 1, "steps": 3}
SMOKE = {"batch_size": 32, "sequence_length": 30, "warmup": 1, "steps": 2}
#: Subjects of the original's CASIA-B training split (``CASIABPose.split_ids["train"]``: 1-74); the synthetic
#: writer's defaults give each 11 views x 10 walks of ~100 frames. A smoke run takes the first few.
SUBJECTS = {"full": 74, "small": 8}
#: name -> (trainer.amp, trainer.recompute) of the project's variants.
PROJECT_VARIANTS = {
    "project_fp32": (False, False),
    "project_bf16": (True, False),
    "project_recompute": (False, True),
    "project_bf16+recompute": (True, True),
    "project_bf16+partial": (True, "partial"),
}
#: The issue's target: the project at >= 5x the original's samples/s at <= 0.5x its peak RSS.
TARGET = {"speed": 5.0, "peak_rss": 0.5}


def checkout(path: str | Path | None = None) -> Path:
    """The original's checkout: ``path``, else ``$GAITGRAPH2_REF``; checked to hold its model code and that its
    packages import. Raises :class:`MissingReference` with a one-paragraph fix."""
    what, packages = "The reference benchmark runs the original GaitGraph2 code", " ".join(PACKAGES.values())
    root = reference_checkout(path, ENV_VAR, "GaitGraph/models/ResGCNv1/nets.py", what, REPOSITORY, COMMIT, packages)
    missing = [pip for name, pip in PACKAGES.items() if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingReference(
            f"The original GaitGraph2 code at {root} imports {', '.join(missing)}, which this Python "
            f"({sys.executable}) cannot import. Install it with `pip install {' '.join(missing)}` (or "
            f"`pip install --target DIR ...` and DIR on PYTHONPATH, to keep the project's environment as it is)."
        )
    return root


def run(
    out_json: str | Path | None = None,
    ref: str | Path | None = None,
    scale: str = "full",
    batch_size: int | None = None,
    threads: int | None = None,
    rounds: int = 1,
) -> dict:
    """Measure the original and every project variant, each in its own subprocess; write and return the results
    with the ratios project / original. ``scale``: ``full`` (:data:`RECIPE`) or ``small`` (:data:`SMOKE`).
    ``rounds`` > 1 measures them all again in the same order each round (a shared machine's speed drifts over
    minutes): each variant's medians over the rounds (:func:`combine_rounds`), and each round's own ratios."""
    root = checkout(ref)  # before the heavy imports: a missing checkout answers at once
    from gaitgraph import process_env  # sets the variables every subprocess, the original's included, inherits
    from gaitgraph.engine.cpu import cpu_has_bf16, usable_cores
    from gaitgraph.utils import write_json

    smoke = scale == "small"
    recipe = {**(SMOKE if smoke else RECIPE), "threads": threads or usable_cores()}
    if batch_size:
        recipe["batch_size"] = batch_size
    with tempfile.TemporaryDirectory(prefix="gaitgraph2-ref-") as data_root:
        data = _prepare_original(root, data_root, SUBJECTS[scale])
        per_round = [_one_round(root, data_root, recipe) for _ in range(rounds)]
    variants = per_round[0] if rounds == 1 else combine_rounds(per_round)
    out = {
        "recipe": {
            **recipe,
            "model": "resgcn-n21-r8, 3 branches x 5 channels, COCO-17",
            "loss": "SupCon, temperature 0.01",
            "optimizer": "AdamW 5e-3, wd 1e-5 + OneCycle per step",
            "device": "cpu",
        },
        "machine": {"cpu_bf16": cpu_has_bf16(), "cores": usable_cores(), "torch": _torch_version()},
        "environment": {name: os.environ.get(name) for name in process_env.DEFAULTS},
        "reference": {"path": str(root), "commit": _commit_of(root), "data": data, "data_loader_workers": 0},
        "variants": variants,
        "ratios": ratios(variants),
    }
    if rounds > 1:
        out["recipe"]["rounds"] = rounds
        out["ratios_per_round"] = [ratios(measured) for measured in per_round]
    if out_json is not None:
        write_json(out, out_json)
    return out


def _one_round(root: Path, data_root: str, recipe: dict) -> dict:
    measured = {"original": _original(root, data_root, recipe)}
    for name, (amp, recompute) in PROJECT_VARIANTS.items():
        measured[name] = _project(amp, recompute, recipe)
    return measured


def combine_rounds(per_round: list[dict]) -> dict:
    """Each variant over several rounds: the median samples/s and CPU seconds per step, the largest peak RSS, and
    every round's result under ``rounds``; a variant that failed in any round keeps that round's error."""
    combined = {}
    for name in per_round[0]:
        runs = [measured[name] for measured in per_round]
        failed = [run for run in runs if "error" in run]
        if failed:
            combined[name] = failed[0]
            continue
        combined[name] = {
            "samples_per_s": statistics.median(run["samples_per_s"] for run in runs),
            "median_cpu_s": statistics.median(run["median_cpu_s"] for run in runs),
            "peak_rss_mb": max(run["peak_rss_mb"] for run in runs),
            "rounds": runs,
        }
    return combined


def ratios(variants: dict) -> dict:
    """Project / original per project variant: samples/s (wall), samples per CPU second, peak RSS; and whether
    the variant meets :data:`TARGET` (by wall-time samples/s and by CPU seconds)."""
    base = variants.get("original", {})
    if "error" in base or not base:
        return {"error": "the original did not run"}
    out = {}
    for name, v in variants.items():
        if name == "original" or "error" in v:
            continue
        speed = v["samples_per_s"] / base["samples_per_s"]
        cpu_speed = base["median_cpu_s"] / v["median_cpu_s"]  # same batch: samples per CPU second
        rss = v["peak_rss_mb"] / base["peak_rss_mb"]
        out[name] = {
            "samples_per_s": round(speed, 2),
            "samples_per_cpu_s": round(cpu_speed, 2),
            "peak_rss": round(rss, 2),
            "meets_target": speed >= TARGET["speed"] and rss <= TARGET["peak_rss"],
            "meets_target_by_cpu_s": cpu_speed >= TARGET["speed"] and rss <= TARGET["peak_rss"],
        }
    return out


def _original_env() -> dict[str, str]:
    # The original's dataset loads its own processed file with torch.load's pre-2.6 default (full pickles);
    # the file is the one _prepare_original just wrote.
    return {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"}


def _prepare_original(root: Path, data_root: str, subjects: int) -> dict:
    """Write the synthetic CASIA-B CSV and let the original's dataset parse it into its processed file."""
    code = (
        f"from benchmarks.reference import prepare_original; prepare_original({str(root)!r}, {data_root!r}, {subjects})"
    )
    return json_from_subprocess(code, _original_env())


def _original(root: Path, data_root: str, recipe: dict) -> dict:
    code = (
        f"from benchmarks.reference import measure_original; measure_original({str(root)!r}, {data_root!r}, {recipe!r})"
    )
    return json_from_subprocess(code, _original_env())


def _project(amp: bool, recompute: bool | str, recipe: dict) -> dict:
    steps = {k: recipe[k] for k in ("batch_size", "sequence_length", "warmup", "steps")}
    code = (
        "from benchmarks.train import default_malloc, measure; "
        f"measure('cpu', {recompute!r}, default_malloc(), amp={amp!r}, recipe={steps!r}, threads={recipe['threads']})"
    )
    return json_from_subprocess(code)


def _import_original(root: str | Path) -> None:
    # Its scripts import both `GaitGraph.x` (repository root) and `models.x` (the GaitGraph/ folder as top level).
    sys.path[:0] = [str(root), str(Path(root) / "GaitGraph")]


def prepare_original(root: str, data_root: str, subjects: int) -> None:
    """In a fresh process: the synthetic CSV of ``subjects`` CASIA-B subjects, parsed by the original's
    ``CASIABPose`` into its processed file; prints one JSON line (walks, seconds)."""
    import contextlib

    from gaitgraph.data import synthetic

    _import_original(root)
    from GaitGraph.datasets.casia_b_pose import CASIABPose

    start = time.perf_counter()
    synthetic.generate_casia_b(Path(data_root) / "casia-b_pose_coco.csv", n_subjects=subjects)
    with contextlib.redirect_stdout(sys.stderr):  # its progress output; stdout's last line is the result
        walks = len(CASIABPose(data_root, "train"))
    print(json.dumps({"subjects": subjects, "walks": walks, "prepare_s": round(time.perf_counter() - start, 1)}))


def original_training(root: str, data_root: str, batch_size: int, sequence_length: int) -> tuple:
    """The original's model, loss, optimizer, scheduler and training DataLoader, as its CASIA-B config builds
    them (``gaitgraph_casia_b.py`` with ``configs/casia_b.yaml`` and ``multi_branch=True``)."""
    import torch

    _import_original(root)
    from GaitGraph.datasets.casia_b_pose import CASIABPose
    from GaitGraph.datasets.graph import Graph
    from GaitGraph.models import ResGCN
    from GaitGraph.transforms import ToFlatTensor
    from GaitGraph.transforms import augmentation as aug
    from GaitGraph.transforms.multi_input import MultiInput
    from pytorch_metric_learning import distances, losses

    graph = Graph("coco")
    transforms = [
        aug.PadSequence(sequence_length),
        aug.RandomFlipSequence(0.5),
        aug.RandomSelectSequence(sequence_length),
        aug.ShuffleSequence(False),
        aug.RandomFlipLeftRight(0.5, flip_idx=graph.flip_idx),
        aug.JointNoise(0.1),
        aug.PointNoise(0.05),
        aug.RandomMove((3, 1)),
        MultiInput(graph.connect_joint, graph.center, enabled=True, concat=False),
        ToFlatTensor(),
    ]

    def compose(data):
        for transform in transforms:
            data = transform(data)
        return data

    dataset = CASIABPose(data_root, "train", transform=compose)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0, shuffle=True)
    a = torch.tensor(graph.A, dtype=torch.float32, requires_grad=False)
    model = ResGCN("resgcn-n21-r8", A=a, num_class=128, num_input=3, num_channel=5, parts=graph.parts)
    loss_fn = losses.SupConLoss(0.01, distance=distances.LpDistance())
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.005, weight_decay=1e-5)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.005, epochs=200, steps_per_epoch=len(loader))
    return model, loss_fn, optimizer, scheduler, loader


def measure_original(root: str, data_root: str, recipe: dict) -> None:
    """In a fresh process: the original's training steps (data loading included); prints one JSON line."""
    import resource

    import torch

    from benchmarks import CPU_AS_LIMIT, step_summary

    resource.setrlimit(resource.RLIMIT_AS, (CPU_AS_LIMIT, CPU_AS_LIMIT))
    torch.set_num_threads(recipe["threads"])
    torch.manual_seed(5318008)  # its LightningCLI's seed_everything default
    model, loss_fn, optimizer, scheduler, loader = original_training(
        root, data_root, recipe["batch_size"], recipe["sequence_length"]
    )
    model.train()
    batches = iter(loader)
    clock = StepClock()
    for _ in range(recipe["warmup"] + recipe["steps"]):
        with clock.step():
            x, y, _ = next(batches)
            loss = loss_fn(model(x)[0], y.squeeze())  # training_step: self(x) is backbone(x)[0]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
    warmup = recipe["warmup"]
    print(json.dumps(step_summary(recipe["batch_size"], clock.wall[warmup:], "cpu", clock.cpu[warmup:])))


def _commit_of(root: Path) -> str:
    if (root / ".git").exists():  # not a parent folder's repository: an exported tree has no .git
        git = ["git", "-C", str(root), "rev-parse", "HEAD"]
        done = subprocess.run(git, capture_output=True, text=True, check=False)
        if done.returncode == 0:
            return done.stdout.strip()
    return f"unknown (not a git checkout; expected {COMMIT})"


def _torch_version() -> str:
    import torch

    return torch.__version__


def main(argv: list[str]) -> None:
    """``python -m benchmarks.reference``: run, print the JSON; a missing checkout exits 2 with its fix."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__.splitlines()[0])
    parser.add_argument("--ref", help=f"checkout of the original (default: ${ENV_VAR})")
    parser.add_argument("--out", help="JSON file to write")
    parser.add_argument("--smoke", action="store_true", help="batch 32, 30 frames, 2 steps, 8 subjects")
    parser.add_argument("--batch", type=int, help="batch size (default: the recipe's 768)")
    parser.add_argument("--threads", type=int, help="torch threads of every variant (default: the usable cores)")
    parser.add_argument("--rounds", type=int, default=1, help="measure everything this many times, interleaved")
    args = parser.parse_args(argv)
    with exit_if_missing():
        result = run(args.out, args.ref, "small" if args.smoke else "full", args.batch, args.threads, args.rounds)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
