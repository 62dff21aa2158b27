"""Evaluation benchmark: embed + score the CASIA-B test protocol at full scale, and scoring at OUMVLP scale.

CASIA-B: 50 test subjects x 110 sequences (~100 frames each) of synthetic walkers in the CASIA-B CSV
format, embedded by an untrained resgcn-n21-r8 on CPU (speed does not depend on the weights), without and
with TTA. OUMVLP: random 128-d embeddings of 10,000 subjects x 14 views x 2 sequences (a gallery of 10,000
subjects at every view), scored under both OUMVLP protocols of conf/dataset/oumvlp.yaml, and part-based ones
[S, 32, 19] (GPGait's 19 parts; the distance tables grow with the parts, not with D) under the OpenGait protocol.
Each scoring reports its time, the process's peak resident memory during it (Linux: VmHWM, reset before) and
the size one [probes x gallery x parts] distance table would have had: the scorers work in probe blocks under
``gaitgraph.evaluation.metrics.BLOCK_ELEMENTS`` instead. Every timing is the median of ``repeats`` runs.
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
from gaitgraph.evaluation import metrics
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


def _peak_rss_mb(reset: bool = False) -> float | None:
    """The process's peak resident memory (VmHWM) in MB; ``reset`` starts a new peak from the current RSS. None
    where /proc does not tell (not Linux)."""
    try:
        if reset:
            Path("/proc/self/clear_refs").write_text("5")
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    kb = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), None)
    return None if kb is None else round(kb / 1024, 1)


def bench_oumvlp_scoring(
    n_subjects: int = OUMVLP_SUBJECTS,
    repeats: int = 1,
    dim: int = 128,
    parts: int | None = None,
    views: int = len(OUMVLP_VIEWS),
    protocols: tuple[str, ...] = ("gaitgraph2", "opengait"),
) -> dict[str, Any]:
    """Scoring time and peak memory of the OUMVLP ``protocols`` on random [S, dim] (or [S, dim, parts])
    embeddings of ``n_subjects`` at the first ``views`` views (fewer views: a shorter run, the same gallery size)."""
    meta = oumvlp_meta(n_subjects)
    meta = meta[meta["view"].isin(OUMVLP_VIEWS[:views])].reset_index(drop=True)
    shape = (len(meta), dim) if parts is None else (len(meta), dim, parts)
    emb = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    gallery, probes = n_subjects * views, n_subjects * views  # one gallery and one probe walk per subject and view
    out: dict[str, Any] = {
        "subjects": n_subjects,
        "views": views,
        "sequences": len(meta),
        "dim": dim,
        "parts": parts,
        "embeddings_mb": round(emb.numel() * 4 / 2**20, 1),
        "one_distance_table_gb": round(probes * gallery * (parts or 1) * 4 / 2**30, 1),
        "block_elements": metrics.BLOCK_ELEMENTS,
    }
    for name, protocol in _protocols("oumvlp").items():
        if name not in protocols:
            continue
        before = _peak_rss_mb(reset=True)
        seconds, result = _median_time(partial(evaluate, emb, meta, protocol, progress=True), repeats)
        peak = _peak_rss_mb()
        out[name] = {
            "score_s": round(seconds, 2),
            "mean_rank1": result.mean_rank1,
            "rss_before_mb": before,
            "peak_rss_mb": peak,
            "peak_above_before_mb": None if peak is None or before is None else round(peak - before, 1),
        }
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
    result["oumvlp_part_scoring"] = bench_oumvlp_scoring(
        oumvlp_subjects, repeats, dim=32, parts=19, protocols=("opengait",)
    )
    if out_json is not None:
        write_json(result, out_json)
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else None, int(args[1]) if len(args) > 1 else 1), indent=2))
