"""Training throughput of the model zoo at each model's CASIA-B recipe (conf/experiment/*_casia_b.yaml).

Per model: its input features, forward, its recipe's loss, backward and an Adam step on synthetic COCO-17 poses in
raw pixels, at the recipe's batch (GaitGraph1 128, GaitTR P x K = 4 x 64, GPGait 4 x 32) and 60-frame windows.
GaitGraph1 is timed with the triplet loss (its SupCon is the engine's; a loss is well under 1% of a step) and on
one view per sequence (FastPoseGait feeds two). Each model runs in a fresh subprocess so its peak RSS is its own;
a few warm-up steps, then the median step time (wall and CPU seconds).
``python -m benchmarks.zoo [out.json] [cpu|cuda]`` or ``python scripts/benchmark.py zoo``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks import StepClock, json_from_subprocess, step_summary
from gaitgraph.utils import write_json

#: model option -> (loss option, batch size, labels per batch); windows of SEQUENCE_LENGTH frames.
RECIPES = {
    "gaitgraph1": ("triplet", 128, 64),
    "gaittr": ("triplet", 256, 4),
    "gpgait": ("triplet_ce", 128, 4),
}
SEQUENCE_LENGTH = 60
WARMUP, STEPS = 2, 5


def run(out_json: str | Path | None = None, device: str = "cpu", models: list[str] | None = None) -> dict:
    """Measure every model (or ``models``) in its own subprocess; write and return the results."""
    results = {
        name: json_from_subprocess(f"from benchmarks.zoo import measure; measure({name!r}, {device!r})")
        for name in models or list(RECIPES)
    }
    out = {
        "recipe": {
            "sequence_length": SEQUENCE_LENGTH,
            "warmup": WARMUP,
            "steps": STEPS,
            "device": device,
            "keypoints": "coco17",
            "optimizer": "Adam",
        },
        "models": results,
    }
    if out_json is not None:
        write_json(out, out_json)
    return out


def measure(name: str, device: str = "cpu") -> None:
    """One model's training steps in this fresh process; prints one JSON line."""
    out = training_steps(name, device)
    print(json.dumps(out))


def training_steps(
    name: str,
    device: str = "cpu",
    recompute: bool = False,
    warmup: int = WARMUP,
    steps: int = STEPS,
    shape: tuple[int, int] | None = None,
) -> dict:
    """``warmup`` then ``steps`` training steps of model option ``name`` at its recipe (or ``shape``: batch, frames)
    in this process: the step summary (wall and CPU seconds, peak RSS), batch, loss and parameter count.
    Each step is features, forward, loss, backward and the Adam step; the poses are drawn before its clock starts.
    ``recompute``: as ``trainer.recompute=true``, the family's declared blocks."""
    import torch
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gaitgraph import CONF_DIR
    from gaitgraph.engine.recompute import recompute_activations
    from gaitgraph.models import build_model

    loss_option, batch, subjects = RECIPES[name]
    batch, frames = shape or (batch, SEQUENCE_LENGTH)
    torch.manual_seed(0)
    dev = torch.device(device)
    skeleton = instantiate(OmegaConf.load(CONF_DIR / "keypoints" / "coco17.yaml"))
    model = build_model(OmegaConf.load(CONF_DIR / "model" / f"{name}.yaml"), skeleton).to(dev).train()
    if recompute:
        recompute_activations(model)
    loss_fn = instantiate(OmegaConf.load(CONF_DIR / "loss" / f"{loss_option}.yaml"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scale = torch.tensor([320.0, 240.0, 1.0], device=dev)
    labels = torch.arange(batch, device=dev) // max(2, batch // subjects)  # the recipe's P x K (K >= 2 when smaller)
    clock = StepClock()
    for _ in range(warmup + steps):
        poses = torch.rand(batch, frames, skeleton.num_joints, 3, device=dev) * scale
        with clock.step():
            loss = loss_fn(model(model.input_features(poses)), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if dev.type == "cuda":
                torch.cuda.synchronize()
    parameters = sum(p.numel() for p in model.parameters() if p.requires_grad)
    summary = step_summary(batch, clock.wall[warmup:], dev, clock.cpu[warmup:])
    return {"batch_size": batch, "loss": loss_option, "parameters": parameters, **summary}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else None, args[1] if len(args) > 1 else "cpu"), indent=2))
