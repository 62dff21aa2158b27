"""GPU benchmark, ready for the day a CUDA machine is at hand: ``python -m benchmarks.gpu [out.json]``.

What it measures, each figure into one JSON file (default outputs/benchmarks/gpu.json):

- ``env``: torch, CUDA, the GPUs present;
- ``families``: training samples/s and peak GPU memory of every model family at its CASIA-B recipe batch
  (GaitGraph2 n21-r8 at 768 with SupCon; the zoo at the recipes of ``benchmarks/zoo.py``) in float32, bf16 and
  fp16 autocast (fp16 with a GradScaler, as ``trainer.amp_dtype=fp16``) and bf16 under ``torch.compile``;
- ``epoch``: one full CASIA-B-scale synthetic epoch (74 subjects x 110 walks) through the platform's own Trainer,
  data side included (window gather, augmentation, multi-input), as ``gaitgraph-train`` runs it;
- ``ddp``: GaitGraph2's step under DistributedDataParallel with NCCL on every GPU present (one process per GPU,
  the global batch split across them), global samples/s.

Each measurement runs in a fresh process (its peak memory is its own, a crash or a time-out costs one entry) and
the whole run keeps to ``--budget-s`` seconds (default 540, so it fits a 10-minute slot): what does not fit is
recorded as skipped. The target for GaitGraph2 on one H100-class GPU is 20,000 samples/s (README, Performance).
``--device cpu --smoke`` runs every code path at toy sizes on a CPU (what the test suite checks).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import ROOT_DIR, step_summary

#: family -> (model option, loss option, batch size, distinct labels per batch); windows of 60 frames.
FAMILIES = {
    "gaitgraph2": ("resgcn_n21_r8", "supcon", 768, 74),
    "gaitgraph1": ("gaitgraph1", "triplet", 128, 64),
    "gaittr": ("gaittr", "triplet", 256, 4),
    "gpgait": ("gpgait", "triplet_ce", 128, 4),
}
PRECISIONS = ("fp32", "bf16", "fp16", "bf16+compile")
SEQUENCE_LENGTH = 60
WARMUP, STEPS = 3, 10
#: Toy sizes for --smoke: every code path, seconds on a CPU.
SMOKE = {"batch": 8, "labels": 4, "warmup": 1, "steps": 2}


def main(argv: list[str] | None = None) -> dict:
    """Run every section within the budget; write and return the JSON."""
    args = _parser().parse_args(argv)
    deadline = time.monotonic() + args.budget_s
    jobs = [("families", f"{family}/{precision}") for family in FAMILIES for precision in PRECISIONS]
    jobs += [("epoch", "gaitgraph2"), ("ddp", "gaitgraph2")]
    out: dict = {"env": _environment(), "budget_s": args.budget_s, "smoke": args.smoke}
    for section, name in jobs:
        left = deadline - time.monotonic()
        entry = _job(section, name, args, left) if left > 5 else {"skipped": "time budget spent"}
        out.setdefault(section, {})[name] = entry
        print(f"{section:9s} {name:26s} {json.dumps(entry)}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", default=str(ROOT_DIR / "outputs" / "benchmarks" / "gpu.json"))
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu (with --smoke, to test the script)")
    parser.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of the whole run")
    parser.add_argument("--smoke", action="store_true", help="toy sizes: check every code path, measure nothing")
    return parser


def _environment() -> dict:
    import torch

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": gpus, "host_cpus": os.cpu_count()}


def _job(section: str, name: str, args: argparse.Namespace, seconds: float) -> dict:
    """One measurement in a fresh process, at most ``seconds`` long; its JSON line, or what went wrong."""
    call = f"from benchmarks.gpu import measure; measure({section!r}, {name!r}, {args.device!r}, {args.smoke!r})"
    try:
        done = subprocess.run(
            [sys.executable, "-c", call], cwd=ROOT_DIR, capture_output=True, text=True, timeout=seconds, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {seconds:.0f} s (the run's budget)"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def measure(section: str, name: str, device: str, smoke: bool) -> None:
    """Child process: one measurement, printed as one JSON line."""
    if section == "families":
        family, precision = name.split("/")
        result = _family_steps(family, precision, device, smoke)
    elif section == "epoch":
        result = _epoch(device, smoke)
    else:
        result = _ddp(device, smoke)
    print(json.dumps(result))


def _parts(family: str, device, smoke: bool):
    """Model, loss, batch size and labels of ``family`` at its recipe (toy sizes when ``smoke``)."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gaitgraph import CONF_DIR
    from gaitgraph.models import build_model

    option, loss_option, batch, labels = FAMILIES[family]
    if smoke:
        batch, labels = SMOKE["batch"], SMOKE["labels"]
    skeleton = instantiate(OmegaConf.load(CONF_DIR / "keypoints" / "coco17.yaml"))
    model = build_model(OmegaConf.load(CONF_DIR / "model" / f"{option}.yaml"), skeleton).to(device).train()
    loss_fn = instantiate(OmegaConf.load(CONF_DIR / "loss" / f"{loss_option}.yaml")).to(device)
    y = torch.arange(labels, device=device).repeat_interleave(math.ceil(batch / labels))[:batch]
    return model, loss_fn, batch, y, skeleton.num_joints


def _timed_steps(step, device, smoke: bool) -> list[float]:
    """Seconds of each timed call of ``step()`` after the warm-up (CUDA synchronised around each)."""
    import torch

    warmup, steps = (SMOKE["warmup"], SMOKE["steps"]) if smoke else (WARMUP, STEPS)
    cuda = torch.device(device).type == "cuda"
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if cuda:
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return times


def _family_steps(family: str, precision: str, device: str, smoke: bool) -> dict:
    """Training steps of one family in one precision: features, forward, loss, backward, Adam step."""
    import torch

    torch.manual_seed(0)
    model, loss_fn, batch, y, joints = _parts(family, device, smoke)
    forward = torch.compile(model) if precision.endswith("+compile") else model
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision.split("+")[0]]
    scaler = torch.amp.GradScaler(torch.device(device).type) if dtype is torch.float16 else None
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    poses = torch.rand(batch, SEQUENCE_LENGTH, joints, 3, device=device) * torch.tensor([320.0, 240.0, 1.0]).to(device)

    def step() -> None:
        with torch.autocast(torch.device(device).type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = loss_fn(forward(model.input_features(poses)), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            loss.backward()
            optimizer.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = _timed_steps(step, device, smoke)
    return {"batch_size": batch, "precision": precision, **step_summary(batch, times, device)}


def _epoch(device: str, smoke: bool) -> dict:
    """One CASIA-B-scale epoch through the platform's Trainer (benchmarks/train.py's data side)."""
    from benchmarks.train import DATA, RECIPE, train_steps

    batch = SMOKE["batch"] if smoke else RECIPE["batch_size"]
    steps = 2 if smoke else math.ceil(DATA["subjects"] * DATA["per_subject"] / batch)
    start = time.perf_counter()
    times = train_steps(device, False, batch, RECIPE["sequence_length"], steps)
    wall = time.perf_counter() - start
    return {
        "steps": steps,
        "epoch_s": round(sum(times), 2),
        "wall_s": round(wall, 2),
        **step_summary(batch, times, device),
    }


def _ddp(device: str, smoke: bool) -> dict:
    """GaitGraph2's step under DDP: NCCL over every GPU present (gloo on the CPU smoke run)."""
    import socket

    import torch
    import torch.multiprocessing as mp

    world = max(torch.cuda.device_count(), 1) if device == "cuda" else 2
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    queue = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_ddp_rank, args=(world, port, device, smoke, queue), nprocs=world, join=True)
    result = queue.get()
    result["world_size"] = world
    result["backend"] = "nccl" if device == "cuda" else "gloo"
    result["global_samples_per_s"] = result.pop("samples_per_s")
    return result


def _ddp_rank(rank: int, world: int, port: int, device: str, smoke: bool, queue) -> None:
    import torch
    import torch.distributed as dist

    cuda = device == "cuda"
    dist.init_process_group(
        "nccl" if cuda else "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world
    )
    dev = torch.device("cuda", rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(dev)
    torch.manual_seed(0)
    model, loss_fn, batch, y, joints = _parts("gaitgraph2", dev, smoke)
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[rank] if cuda else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    local = batch // world
    poses = torch.rand(local, SEQUENCE_LENGTH, joints, 3, device=dev) * 100
    labels = y[rank * local : (rank + 1) * local]

    def step() -> None:
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(ddp(model.input_features(poses)), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    times = _timed_steps(step, dev, smoke)
    if rank == 0:
        queue.put({"precision": "bf16" if cuda else "fp32", **step_summary(local * world, times, dev)})
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
