"""Benchmarks of the platform (never timed unit tests): results go to JSON files, quoted in notes and README.

    python scripts/benchmark.py [SECTION ...|all] [--out DIR] [--scale full|small]

Sections (all by default): ``data`` (CASIA-B-scale CSV parse, cache build, cached load, peak RSS per step),
``train`` (GaitGraph2 CASIA-B training samples/s and peak RSS), ``eval`` (embedding + scoring the
CASIA-B test protocol with and without TTA; scoring at OUMVLP scale), ``zoo`` (GaitGraph1, GaitTR and GPGait
training samples/s and peak RSS at their CASIA-B recipes), ``startup`` (config-only commands: seconds to
answer, heavy imports), ``precision`` (fp32 / bf16 autocast / bf16 + torch.compile training steps, interleaved),
``threads`` (one run alone and two at once, OpenMP wait policy and ``trainer.num_threads=auto``), ``reference``
(the CASIA-B recipe's training step of the original GaitGraph2 code against the project's fp32 / bf16 / recompute
steps, as ratios; needs a checkout of the original in ``GAITGRAPH2_REF``, checked before any section runs;
``--scale small`` is its smoke size), ``zoo_reference`` (GaitGraph1, GaitTR and GPGait training steps of
FastPoseGait's own code against the project's under its host-memory variants, interleaved, as ratios; needs a
FastPoseGait checkout in ``FASTPOSEGAIT_REF``, checked before any section runs; ``--scale small``: its smoke
size). The GPU benchmark is its own script, ``python -m benchmarks.gpu``. Each writes ``<DIR>/<section>.json``
(default DIR: outputs/benchmarks). Timings swing up to 2x on shared machines: compare ratios from one run.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the benchmarks/ package lives beside gaitgraph/, not inside it
SECTIONS = ("data", "train", "eval", "zoo", "memory", "startup", "precision", "threads", "reference", "zoo_reference")
#: Sections that take ``--scale``.
SCALED = ("data", "reference", "zoo_reference")
#: Sections that import a reference implementation from a checkout, checked before the first section runs.
NEEDS_CHECKOUT = ("reference", "zoo_reference")


def main(argv: list[str]) -> None:
    out = ROOT / "outputs" / "benchmarks"
    scale = "full"
    chosen: list[str] = []
    args = iter(argv)
    for arg in args:
        if arg == "--out":
            out = Path(next(args))
        elif arg == "--scale":
            scale = next(args)
        elif arg in SECTIONS:
            chosen.append(arg)
        elif arg == "all":
            chosen.extend(SECTIONS)
        else:
            raise SystemExit(f"unknown argument {arg!r}; usage: {__doc__.splitlines()[2].strip()}")
    chosen = chosen or list(SECTIONS)
    for section in NEEDS_CHECKOUT:
        if section in chosen:
            _check_reference(section)
    for section in chosen:
        module = importlib.import_module(f"benchmarks.{section}")
        target = out / f"{section}.json"
        kwargs = {"scale": scale} if section in SCALED else {}
        result = module.run(out_json=target, **kwargs)
        print(f"== {section} -> {target}")
        print(json.dumps(result, indent=2))


def _check_reference(section: str) -> None:
    """Stop before the first section, with the fix, when ``section`` cannot run (exit status 2)."""
    from benchmarks import exit_if_missing

    with exit_if_missing():
        importlib.import_module(f"benchmarks.{section}").checkout()


if __name__ == "__main__":
    main(sys.argv[1:])
