"""Evaluation benchmark: embed + score the CASIA-B test protocol at full scale, and scoring at OUMVLP scale.

CASIA-B: 50 test subjects x 110 sequences (~100 frames each) of synthetic walkers in the CASIA-B CSV
format, embedded by an untrained resgcn-n21-r8 on CPU (speed does not depend on the weights), without and
with TTA. OUMVLP: random 128-d embeddings of 10,000 subjects x 14 views x 2 sequences, scored under both
OUMVLP protocols of conf/dataset/oumvlp.yaml. Every timing is the median of ``repeats`` runs.
``python -m benchmarks.eval [out.json] [repeats]``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from gaitgraph import CONF_DIR
from gaitgraph.data.casia_b import CasiaBReader
from gaitgraph.data.poseset import PoseSet
from gaitgraph.data.synthetic import generate_casia_b
from gaitgraph.evaluation.embed import embed_poseset
from gaitgraph.evaluation.metrics import evaluate
from gaitgraph.evaluation.protocols import load_protocols
from gaitgraph.models import build_model
from gaitgraph.utils import write_json

CASIA_B_TEST_SUBJECTS = 50
OUMVLP_SUBJECTS = 10_000
OUMVLP_VIEWS = [f"{a:03d}" for a in (*range(0, 91, 15), *range(180, 271, 15))]


def _median_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def _protocols(dataset: str) -> dict:
    return load_protocols(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "dataset" / f"{dataset}.yaml").protocols))


def casia_b_test_set(work: Path, n_subjects: int = CASIA_B_TEST_SUBJECTS, frames: int = 100, seed: int = 0) -> PoseSet:
    """Synthetic CASIA-B-format walkers (n_subjects x 10 walks x 11 views), read back by the CASIA-B reader."""
    generate_casia_b(work / "casia-b_pose_coco.csv", n_subjects=n_subjects, frames=frames, seed=seed)
    return CasiaBReader(work).read()


def bench_casia_b(poses: PoseSet, repeats: int = 1, batch_size: int = 64) -> dict[str, Any]:
    """Embed + score time of the CASIA-B protocol, without and with TTA."""
    skeleton = instantiate(OmegaConf.load(CONF_DIR / "keypoints" / "coco17.yaml"))
    model_cfg = OmegaConf.load(CONF_DIR / "model" / "resgcn_n21_r8.yaml")
    torch.manual_seed(0)
    model = build_model(model_cfg, skeleton).eval()
    protocol = _protocols("casia_b")["casia_b"]
    out: dict[str, Any] = {"sequences": len(poses), "frames": int(len(poses.frames)), "sequence_length": 60}
    for tta in (False, True):
        embed_s, emb = _median_time(
            partial(embed_poseset, model, poses, skeleton, 60, tta=tta, batch_size=batch_size, progress=False),
            repeats,
        )
        score_s, result = _median_time(partial(evaluate, emb, poses.meta, protocol), repeats)
        out["tta" if tta else "plain"] = {
            "embed_s": round(embed_s, 2),
            "score_s": round(score_s, 2),
            "total_s": round(embed_s + score_s, 2),
            "embedding_dim": int(emb.shape[1]),
            "mean_rank1": result.mean_rank1,
        }
    return out


def oumvlp_meta(n_subjects: int) -> pd.DataFrame:
    """Metadata of n_subjects x 14 views x seq 00/01 (every sequence present)."""
    s, v, q = np.meshgrid(np.arange(n_subjects), np.arange(len(OUMVLP_VIEWS)), np.arange(2), indexing="ij")
    return pd.DataFrame(
        {"subject": s.ravel(), "condition": "nm", "seq": q.ravel(), "view": np.asarray(OUMVLP_VIEWS)[v.ravel()]}
    )


def bench_oumvlp_scoring(n_subjects: int = OUMVLP_SUBJECTS, repeats: int = 1, dim: int = 128) -> dict[str, Any]:
    """Scoring time of both OUMVLP protocols on random embeddings."""
    meta = oumvlp_meta(n_subjects)
    emb = torch.randn(len(meta), dim, generator=torch.Generator().manual_seed(0))
    out: dict[str, Any] = {"subjects": n_subjects, "sequences": len(meta), "dim": dim}
    for name, protocol in _protocols("oumvlp").items():
        seconds, result = _median_time(partial(evaluate, emb, meta, protocol, progress=True), repeats)
        out[name] = {"score_s": round(seconds, 2), "mean_rank1": result.mean_rank1}
    return out


def run(out_json: str | Path | None = None, repeats: int = 1, oumvlp_subjects: int = OUMVLP_SUBJECTS) -> dict:
    """Run both benchmarks on CPU; write the JSON to ``out_json`` (atomically) if given and return it."""
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "repeats": repeats,
    }
    with tempfile.TemporaryDirectory(prefix="gaitgraph-bench-eval-") as tmp:
        poses = casia_b_test_set(Path(tmp))
    result["casia_b"] = bench_casia_b(poses, repeats)
    result["oumvlp_scoring"] = bench_oumvlp_scoring(oumvlp_subjects, repeats)
    if out_json is not None:
        write_json(result, out_json)
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else None, int(args[1]) if len(args) > 1 else 1), indent=2))
