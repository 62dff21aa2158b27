"""Terminal table and result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from rich.console import Console

from gaitgraph.evaluation.metrics import evaluate
from gaitgraph.evaluation.protocols import Protocol
from gaitgraph.evaluation.report import print_result, save_result, save_results

SPEC = {
    "gallery": {"condition": ["nm"], "seq": [1, 2]},
    "probes": {"nm": {"condition": ["nm"], "seq": [3]}, "cl": {"condition": ["cl"]}},
    "exclude_identical_view": True,
}


def result_for(bad_cl: bool, name: str = "toy"):
    views = ["000", "090", "180"]
    rows = [
        (s, c, q, v) for s in range(4) for c, seqs in (("nm", (1, 2, 3)), ("cl", (1,))) for q in seqs for v in views
    ]
    meta = pd.DataFrame(rows, columns=["subject", "condition", "seq", "view"])
    emb = np.eye(4, dtype=np.float32)[meta.subject]
    if bad_cl:  # subject 0's CL probe at 090 looks like subject 1
        emb[((meta.subject == 0) & (meta.condition == "cl") & (meta.view == "090")).to_numpy()] = np.eye(4)[1]
    return evaluate(emb, meta, Protocol.from_config(name, SPEC))


def test_print_result_paper_layout_with_baseline() -> None:
    console = Console(record=True, width=140)
    print_result(result_for(True), "CASIA-B toy", console=console, baseline=result_for(False))
    text = console.export_text()
    assert "CASIA-B toy" in text and "identical view excluded" in text
    cl_row = next(line for line in text.splitlines() if line.strip("│┃ ").startswith("cl"))
    # cl at probe view 090: 3 of 4 right against both other gallery views -> 75.0; mean (100+75+100)/3
    assert "75.0" in cl_row and "91.7" in cl_row and cl_row.rstrip(" │").endswith("100.0")
    assert "mean rank-1 95.8" in text and "baseline: rank-1 100.0" in text


def test_save_result_writes_complete_files(tmp_path: Path) -> None:
    result = result_for(True)
    paths = save_result(result, tmp_path / "eval", prefix="casia_")
    assert sorted(p.name for p in (tmp_path / "eval").iterdir()) == [
        "casia_heatmap.png",
        "casia_paper_table.md",
        "casia_paper_table.tex",
        "casia_results.csv",
        "casia_results.json",
        "casia_results.md",
    ]
    table = pd.read_csv(paths["csv"], index_col="condition")
    assert list(table.columns) == ["000", "090", "180", "mean"]
    assert table.loc["cl", "090"] == 0.75
    data = json.loads(paths["json"].read_text())
    assert data["protocol"] == "toy" and data["exclude_identical_view"] is True and len(data["cells"]) == 2 * 9
    with Image.open(paths["png"]) as img:
        assert img.format == "PNG" and img.size[0] > 200


def test_save_results_one_folder_per_protocol_when_several(tmp_path: Path) -> None:
    single = save_results([result_for(False, "a")], tmp_path / "one")
    assert single["a"]["csv"] == tmp_path / "one" / "results.csv"
    several = save_results([result_for(False, "a"), result_for(True, "b")], tmp_path / "two")
    assert several["b"]["json"] == tmp_path / "two" / "b" / "results.json"
    assert json.loads(several["b"]["json"].read_text())["protocol"] == "b"


def test_retrieval_results_print_and_save_with_the_submission(tmp_path: Path) -> None:
    from gaitgraph.evaluation.protocols import RetrievalProtocol
    from gaitgraph.evaluation.retrieval import evaluate_retrieval

    meta = pd.DataFrame(
        {"subject": [1, 2, 1, -1], "condition": ["g", "g", "p", "q"], "source": ["a/1", "a/2", "b/3", "probe/03/vidX"]}
    )
    emb = np.array([[1, 0], [0, 1], [1, 0.1], [0.1, 1]], dtype=np.float32)
    scored = evaluate_retrieval(
        emb,
        meta,
        RetrievalProtocol.from_config(
            "grew", {"probes": {"condition": ["p"]}, "gallery": {"condition": ["g"]}, "ranks": [1, 5]}
        ),
    )
    submission = evaluate_retrieval(
        emb,
        meta,
        RetrievalProtocol.from_config(
            "grew_submission",
            {
                "probes": {"condition": ["q"]},
                "gallery": {"condition": ["g"]},
                "missing_gallery": "skip",
                "submission": True,
            },
        ),
    )
    console = Console(record=True, width=140)
    print_result(scored, "GREW toy", console=console, baseline=scored)
    text = console.export_text()
    assert "GREW toy" in text and "1 probes against the whole gallery of 2" in " ".join(text.split())
    assert text.count("100.00") >= 6  # rank-1, rank-5, mAP for the model and the baseline row
    written = save_results([scored, submission], tmp_path)
    assert sorted(p.name for p in (tmp_path / "grew").iterdir()) == ["cmc.png", "results.csv", "results.json"]
    assert json.loads(written["grew"]["json"].read_text())["ranks"] == {"1": 1.0, "5": 1.0}
    lines = written["grew_submission"]["submission"].read_text().splitlines()
    assert lines == ["videoId,rank1,rank2", "vidX,2,1"]
    # The submission protocol scores no probe (identities unpublished): no empty "mAP -, mINP -" curve is written.
    assert "png" not in written["grew_submission"]
    assert not (tmp_path / "grew_submission" / "cmc.png").exists()
