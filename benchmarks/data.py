"""Data-path benchmark, two parts.

CASIA-B: a synthetic CASIA-B-scale CSV -> parse -> HDF5 cache -> cached load.
OUMVLP-Pose: a synthetic tree of frame JSONs at 1/10 of the real subject count (both sources), ingested
cold with 1 and 2 reader workers (``dataset.reader.workers``) through the real ``load_poses`` (manifest key,
parse, raw and processed cache), then started warm; extrapolated to the full dataset on 16 cores.

Each step runs in its own subprocess so that its peak RSS (the child's ``ru_maxrss``) belongs to
that step alone; ``import`` is the bare interpreter + imports baseline for reading the others.
``python -m benchmarks.data [full|small] [out.json]``. The 1/10 OUMVLP tree (1.4 M files, ~6 min to write
here) is generated once into ``$GAITGRAPH_BENCH_OUMVLP`` (default /tmp/gaitgraph-bench/oumvlp-1000) and reused.
"""

from __future__ import annotations

import json
import os
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
#: Synthetic OUMVLP-Pose trees per scale; "full" is 1/10 of the real subject count (~25 frames per walk).
OUMVLP_SCALES = {
    "full": {"n_subjects": 1000, "n_views": 14, "frames": 25},
    "small": {"n_subjects": 6, "n_views": 4, "frames": 10},
}
OUMVLP_TREE = Path(os.environ.get("GAITGRAPH_BENCH_OUMVLP", "/tmp/gaitgraph-bench/oumvlp-1000"))
#: (source, reader workers) of each cold ingest.
OUMVLP_RUNS = (("openpose", 1), ("openpose", 2), ("alphapose", 2))
#: The real dataset and machine the targets speak of.
FULL_SUBJECTS, FULL_CORES = 10_307, 16
TARGETS = {"ingest_s": 600, "peak_rss_mb": 4096, "warm_start_s": 5}


def run(scale: str = "full", out_json: Path | None = None, parts: tuple[str, ...] = ("casia_b", "oumvlp")) -> dict:
    """Time every step of the data path at ``scale``; write the results to ``out_json`` if given."""
    if scale not in SCALES:
        raise ValueError(f"scale must be one of {sorted(SCALES)}, got {scale!r}")
    result: dict = {"scale": scale}
    if "casia_b" in parts:
        with tempfile.TemporaryDirectory(prefix="gaitgraph-bench-") as tmp:
            work = Path(tmp)
            steps = {name: _in_subprocess("_step", name, str(work), scale) for name in STEPS}
            csv = work / "casia-b" / "casia-b_pose_coco.csv"
            result.update(
                {
                    **SCALES[scale],
                    "csv_mb": round(csv.stat().st_size / 1e6, 1),
                    "cache_mb": round((work / "cache.h5").stat().st_size / 1e6, 1),
                    "steps": steps,
                }
            )
    if "oumvlp" in parts:
        result["oumvlp"] = oumvlp_part(scale)
    if out_json is not None:
        write_json(result, out_json)
    return result


def _in_subprocess(function: str, *args: str) -> dict:
    code = f"from benchmarks.data import {function}; {function}(*{args!r})"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT_DIR, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def oumvlp_part(scale: str) -> dict:
    """Cold ingests (1 and 2 workers), a warm start, and their extrapolation to full OUMVLP-Pose on 16 cores."""
    with tempfile.TemporaryDirectory(prefix="gaitgraph-bench-") as tmp:
        tree = OUMVLP_TREE if scale == "full" else Path(tmp) / "oumvlp"
        out: dict = {"tree": str(tree), **OUMVLP_SCALES[scale]}
        if not (tree / "ID_list.csv").is_file():
            out["generate_s"] = _in_subprocess("_oumvlp_generate", str(tree), scale)["seconds"]
        runs = {}
        for source, workers in OUMVLP_RUNS:
            cache_dir = Path(tmp) / f"cache-{source}-{workers}"
            runs[f"{source}_{workers}w"] = _in_subprocess(
                "_oumvlp_step", "ingest", str(tree), source, str(workers), str(cache_dir)
            )
        warm = _warm_start(tree, Path(tmp) / "cache-openpose-2")
        # A tiny tree's warm start is the part that does not grow with the data (imports' first calls, file opens).
        tiny = Path(tmp) / "oumvlp-tiny"
        _in_subprocess("_oumvlp_generate", str(tiny), "small")
        _in_subprocess("_oumvlp_step", "ingest", str(tiny), "openpose", "0", str(Path(tmp) / "cache-tiny"))
        fixed = _warm_start(tiny, Path(tmp) / "cache-tiny")["load_s"]
        base = _in_subprocess("_step", "import", tmp, scale)["peak_rss_mb"]
    out["sequences_per_source"] = runs["openpose_2w"]["sequences"]
    out.update(cold=runs, warm=warm, warm_fixed_load_s=fixed, import_rss_mb=base)
    out["full_scale"] = _extrapolate(runs["openpose_2w"], warm, fixed, base, out["n_subjects"])
    return out


def _warm_start(tree: Path, cache_dir: Path, repeats: int = 5) -> dict:
    """The median (by total time) of ``repeats`` warm starts in fresh processes (they swing with the load)."""
    args = ("warm", str(tree), "openpose", "2", str(cache_dir))
    starts = [_in_subprocess("_oumvlp_step", *args) for _ in range(repeats)]
    return sorted(starts, key=lambda w: w["import_s"] + w["load_s"])[repeats // 2]


def _extrapolate(two: dict, warm: dict, fixed_load: float, base_rss: float, subjects: int) -> dict:
    """Full OUMVLP-Pose (one source) on 16 cores, from the 2-worker ingest's CPU seconds and the warm start.

    CPU seconds, not wall time: on a shared machine the wall time of a parallel run swings with the other
    processes' load, the work each process did does not.
    """
    k = FULL_SUBJECTS / subjects
    serial, parallel = two["main_cpu_s"], two["worker_cpu_s"]
    ingest = k * (serial + parallel / FULL_CORES)
    rss = base_rss + k * (two["peak_rss_mb"] - base_rss)
    start = warm["import_s"] + fixed_load + k * max(0.0, warm["load_s"] - fixed_load)
    return {
        "scale_factor": round(k, 3),
        "files": round(k * two["files"]),
        "serial_s": round(serial, 1),
        "parallel_s": round(parallel, 1),
        "ingest_s": round(ingest, 1),
        "peak_rss_mb": round(rss),
        "warm_start_s": round(start, 2),
        "worker_peak_rss_mb": two["worker_peak_rss_mb"],
        "all_processes_peak_rss_mb": round(rss + FULL_CORES * two["worker_peak_rss_mb"]),
        "formula": (
            "k = 10307 / subjects; from the 2-worker ingest: S = CPU seconds of the main process (manifest "
            "check, cache writes, preprocessing, final load), P = CPU seconds of the workers (parsing, manifest "
            "scan); ingest = k (S + P / 16), as if the main process never overlapped the workers. "
            "peak RSS = import RSS + k (2-worker peak - import RSS) "
            "(everything but the interpreter grows with the data); each of the 16 workers holds one task at a time and "
            "does not grow with the data (worker_peak_rss_mb, measured). "
            "warm start = import time + F + k (L - F), L the warm load_poses call on the 1/10 tree, F the same on "
            "a 6-subject tree (the part that does not grow with the data); each the median of 5 fresh processes."
        ),
        "targets": TARGETS,
        "met": {
            "ingest_s": ingest < TARGETS["ingest_s"],
            "peak_rss_mb": rss < TARGETS["peak_rss_mb"],
            "warm_start_s": start < TARGETS["warm_start_s"],
        },
    }


def _oumvlp_generate(tree: str, scale: str) -> None:
    from gaitgraph.data.synthetic import generate_oumvlp

    start = time.perf_counter()
    generate_oumvlp(tree, seed=0, **OUMVLP_SCALES[scale])
    print(json.dumps({"seconds": round(time.perf_counter() - start, 1)}))


def _oumvlp_step(kind: str, tree: str, source: str, workers: str, cache_dir: str) -> None:
    """``ingest``: the cold manifest key and cache build; ``warm``: a start with everything cached. Prints JSON."""
    start = time.perf_counter()
    from hydra import compose, initialize_config_module
    from hydra.utils import instantiate

    from gaitgraph.data.cache import cache_paths, load_poses

    with initialize_config_module("gaitgraph.conf", version_base="1.3"):  # imports it: resolvers, schema
        cfg = compose(
            "train",
            overrides=[
                "dataset=oumvlp",
                f"keypoints={source}",
                f"dataset.reader.root={tree}",
                f"dataset.reader.workers={workers}",
                f"paths.cache_dir={cache_dir}",
            ],
        )
    skeleton = instantiate(cfg.keypoints)
    out: dict = {"import_s": round(time.perf_counter() - start, 2)}
    start, cpu = time.perf_counter(), _cpu_seconds()
    if kind == "ingest":
        cache_paths(cfg.dataset, cache_dir, skeleton)  # the cold manifest: every file stat-ed once
        out["manifest_s"] = round(time.perf_counter() - start, 1)
    poses = load_poses(cfg.dataset, skeleton, cache_dir)
    out["load_s" if kind == "warm" else "seconds"] = round(time.perf_counter() - start, 2)
    out["main_cpu_s"], out["worker_cpu_s"] = (round(b - a, 1) for a, b in zip(cpu, _cpu_seconds()))
    manifest = next(Path(cache_dir).glob("oumvlp-manifest-*.json"))
    files = sum(u["files"] for u in json.loads(manifest.read_text())["units"].values())
    out.update(files=files, sequences=len(poses), frames=int(len(poses.frames)), workers=int(workers))
    if kind == "ingest":
        out["files_per_s"] = round(files / out["seconds"])
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if kind == "ingest" and int(workers) > 1:
        out["worker_peak_rss_mb"] = _worker_rss(cfg.dataset.reader, int(workers))
    print(json.dumps(out))


def _cpu_seconds() -> tuple[float, float]:
    """CPU seconds (user + system) of this process and of its finished children (the reader workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _worker_rss(reader_cfg, workers: int) -> float:
    """Peak RSS of a reader worker process after parsing a few tasks (what each of the N workers holds)."""
    from hydra.utils import instantiate

    from benchmarks.rss_probe import parse_and_measure
    from gaitgraph.data.parallel import ordered_map

    reader = instantiate(reader_cfg)
    units = reader.units()[: 4 * workers]
    return round(max(ordered_map(parse_and_measure, reader, units, workers, "worker RSS")) / 1024, 1)


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
    from gaitgraph.data.batches import WindowBatches
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
    return {
        "epoch_samples": samples,
        "epoch_data_s": round(elapsed, 2),
        "data_samples_per_s": round(samples / elapsed, 1),
        **EPOCH,
    }


if __name__ == "__main__":
    args = sys.argv[1:]
    print(json.dumps(run(args[0] if args else "full", Path(args[1]) if len(args) > 1 else None), indent=2))
