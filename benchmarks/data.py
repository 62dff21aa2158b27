"""Data-path benchmark: synthetic CASIA-B-scale CSV -> parse -> HDF5 cache -> cached load.

Each step runs in its own subprocess so that its peak RSS (the child's ``ru_maxrss``) belongs to
that step alone; ``import`` is the bare interpreter + imports baseline for reading the others.
``python -m benchmarks.data [full|small] [out.json]``.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks import ROOT_DIR
from gaitgraph.utils import write_json

#: Synthetic generator arguments per scale; "full" is CASIA-B's size (124 x 10 x 11, ~100 frames).
SCALES = {
    "full": {"n_subjects": 124, "n_views": 11, "frames": 100},
    "small": {"n_subjects": 4, "n_views": 3, "frames": 30},
}
STEPS = ("import", "generate", "parse", "parse+build", "cached_load", "epoch_data")
#: The training data side of one epoch as GaitGraph2 CASIA-B runs it (batch 768, 60 frames).
EPOCH = {"batch_size": 768, "sequence_length": 60}


def run(scale: str = "full", out_json: Path | None = None) -> dict:
    """Time every step of the data path at ``scale``; write the results to ``out_json`` if given."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    with tempfile.TemporaryDirectory(prefix="gaitgraph-bench-") as tmp:
        work = Path(tmp)
        steps = {name: _in_subprocess(name, str(work), scale) for name in STEPS}
        csv = work / "casia-b" / "casia-b_pose_coco.csv"
        result = {"scale": scale, **SCALES[scale], "csv_mb": round(csv.stat().st_size / 1e6, 1),
                  "cache_mb": round((work / "cache.h5").stat().st_size / 1e6, 1), "steps": steps}
    if out_json is not None:
        write_json(result, out_json)
    return result


def _in_subprocess(step: str, work: str, scale: str) -> dict:
    code = f"from benchmarks.data import _step; _step({step!r}, {work!r}, {scale!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT_DIR, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def _step(step: str, work: str, scale: str) -> None:
    """Run one step in this (fresh) process and print its timings and peak RSS as JSON."""
    from gaitgraph.data.cache import load_poseset, save_poseset
    from gaitgraph.data.casia_b import CasiaBReader
    from gaitgraph.data.synthetic import generate_casia_b

    root = Path(work) / "casia-b"
    cache = Path(work) / "cache.h5"
    out: dict = {}
    start = time.perf_counter()
    if step == "generate":
        generate_casia_b(root / "casia-b_pose_coco.csv", seed=0, **SCALES[scale])
    elif step in ("parse", "parse+build"):
        poses = CasiaBReader(root).read()
        out["parse_s"] = round(time.perf_counter() - start, 2)
        out.update(sequences=len(poses), frames=int(len(poses.frames)))
        if step == "parse+build":
            t = time.perf_counter()
            save_poseset(poses, cache)
            out["build_s"] = round(time.perf_counter() - t, 2)
    elif step == "cached_load":
        poses = load_poseset(cache)
        out.update(sequences=len(poses), frames=int(len(poses.frames)))
    elif step == "epoch_data":
        out.update(_epoch_data(load_poseset(cache)))
    out["seconds"] = round(time.perf_counter() - start, 2)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # KiB on Linux
    print(json.dumps(out))


def _epoch_data(poses) -> dict:
    """One epoch's data side: window gather, augmentation and multi-input features, no model."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from gaitgraph import CONF_DIR
    from gaitgraph.data.datamodule import WindowBatches
    from gaitgraph.models.features import multi_input

    skeleton = instantiate(OmegaConf.load(CONF_DIR / "keypoints" / "coco17.yaml"))
    augment = instantiate(OmegaConf.load(CONF_DIR / "augmentation" / "gaitgraph2.yaml"), _partial_=True)(
        skeleton=skeleton
    )
    batches = WindowBatches(poses, EPOCH["sequence_length"], EPOCH["batch_size"], seed=0)
    start = time.perf_counter()
    samples = 0
    for x, _ in batches:
        feats = multi_input(augment(x), skeleton, "gaitgraph2")
        samples += len(feats)
    elapsed = time.perf_counter() - start
    del feats
    return {"epoch_samples": samples, "epoch_data_s": round(elapsed, 2),
            "data_samples_per_s": round(samples / elapsed, 1), **EPOCH}


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else "full", Path(args[1]) if len(args) > 1 else None), indent=2))
