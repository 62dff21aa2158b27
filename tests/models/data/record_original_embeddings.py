"""Record ``original_embeddings.npz`` by running the ORIGINAL GaitGraph2 network on this project's weights.

Upstream: tteepe/GaitGraph2 @ e10df17b9cff351d1c9ca113960312e8d429b330 (2022-03-28). The files used here
(``GaitGraph/models/ResGCNv1/*`` and ``GaitGraph/datasets/graph.py``) are byte-identical at the two later
commits, up to 0c619f370574baf9b0fa62af583588375c896e7c (2022-04-19). This project holds none of that code:
the script imports it at run time from a checkout given on the command line::

    git clone https://github.com/tteepe/GaitGraph2 /tmp/GaitGraph2 && git -C /tmp/GaitGraph2 checkout e10df17
    .venv/bin/python -m tests.models.data.record_original_embeddings /tmp/GaitGraph2 /tmp/original_embeddings.npz

For every case of ``tests/models/test_original_embeddings.py`` it builds the original model by its own name
(``create("pa-resgcn-n21-r8", ...)``, adjacency and body parts from the original ``Graph``), loads this
project's seeded weights by name (``strict=True``), runs the seeded float64 input in eval mode and then in
training mode, and writes ``<case>/eval``, ``<case>/feature_sum`` and ``<case>/train`` as the test reads them.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

from tests.models import test_original_embeddings as cases

UPSTREAM = "tteepe/GaitGraph2"
UPSTREAM_COMMIT = "e10df17b9cff351d1c9ca113960312e8d429b330"
#: keypoints option of a case -> the original Graph's dataset name (same joints, links and parts).
GRAPH_NAMES = {"coco17": "coco", "openpose": "oumvlp"}


def import_original(checkout: Path) -> tuple:
    """The original ``create`` and ``Graph``; their modules import each other as top-level ``models.``."""
    code = checkout / "GaitGraph"
    if not (code / "models" / "ResGCNv1" / "nets.py").is_file():
        raise SystemExit(f"{checkout}: not a GaitGraph2 checkout (no GaitGraph/models/ResGCNv1/nets.py)")
    sys.path.insert(0, str(code))
    from datasets.graph import Graph
    from models.ResGCNv1 import create

    return create, Graph


def checkout_commit(checkout: Path) -> str | None:
    """HEAD of the checkout, or None when it is not a git work tree (e.g. an unpacked archive)."""
    git = ["git", "-C", str(checkout), "rev-parse", "HEAD"]
    done = subprocess.run(git, capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


def record(checkout: Path) -> dict[str, np.ndarray]:
    """Every array of the record, keyed ``<case>/<what>``, computed by the original network."""
    create, Graph = import_original(checkout)
    out = {}
    for case, (keypoints, *_) in cases.CASES.items():
        graph = Graph(GRAPH_NAMES[keypoints])
        A = torch.tensor(graph.A, dtype=torch.float32)  # as the original training scripts build it
        original = create(case, A=A, num_class=128, num_input=3, num_channel=5, parts=graph.parts).double()
        original.load_state_dict(cases.seeded_state_dict(cases.build(case)), strict=True)
        x = cases.seeded_input(A.shape[-1])
        with torch.no_grad():
            original.eval()
            embedding, feature = original(x)
            original.train()  # batch statistics, as the test's training-mode forward
            train_embedding, _ = original(x)
        out[f"{case}/eval"] = embedding.numpy()
        out[f"{case}/feature_sum"] = feature.sum(dim=(2, 3)).numpy()
        out[f"{case}/train"] = train_embedding.numpy()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkout", type=Path, help=f"a checkout of {UPSTREAM} (commit {UPSTREAM_COMMIT[:7]})")
    parser.add_argument(
        "out", type=Path, nargs="?", default=cases.RECORD, help=f"npz to write (default {cases.RECORD})"
    )
    args = parser.parse_args()
    head = checkout_commit(args.checkout)
    if head not in (None, UPSTREAM_COMMIT):
        print(f"note: {args.checkout} is at {head}, the committed record used {UPSTREAM_COMMIT}", file=sys.stderr)
    arrays = record(args.checkout)
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {len(arrays)} arrays to {args.out}")


if __name__ == "__main__":
    main()
