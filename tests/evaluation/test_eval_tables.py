"""Result tables are never cut (terminal, pipe, log) and are written as Markdown and LaTeX in the papers' layout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
from rich.console import Console

from gaitgraph.evaluation.metrics import evaluate
from gaitgraph.evaluation.protocols import Protocol
from gaitgraph.evaluation.report import (
    paper_frame,
    print_result,
    save_result,
    table_text,
)
from gaitgraph.evaluation.tables import latex, markdown, pct
from gaitgraph.utils import markdown_table

from .test_eval_report import result_for

VIEWS = [f"{v:03d}" for v in range(0, 181, 18)]  # CASIA-B's 11 views: the table the issue saw cut


def _eleven_views():
    rows = [(s, c, q, v) for s in range(3) for c, seqs in (("nm", (1, 2)), ("bg", (1,))) for q in seqs for v in VIEWS]
    meta = pd.DataFrame(rows, columns=["subject", "condition", "seq", "view"])
    emb = np.eye(3, dtype=np.float32)[meta.subject]
    emb[((meta.subject == 0) & (meta.condition == "bg") & (meta.view == "180")).to_numpy()] = np.eye(3)[1]
    spec = {
        "gallery": {"condition": ["nm"], "seq": [1]},
        "probes": {"nm": {"condition": ["nm"], "seq": [2]}, "bg": {"condition": ["bg"]}},
        "exclude_identical_view": True,
    }
    return evaluate(emb, meta, Protocol.from_config("casia_like", spec))


def _full_row(text: str, condition: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.strip("│┃| ").startswith(condition))
    return [c.strip() for c in line.strip("│┃| ").split("│") if c.strip()]


def _expected_bg_row(result) -> list[str]:
    return ["bg", *(pct(result.table.loc["bg", v]) for v in VIEWS), pct(result.table.loc["bg", "mean"])]


def test_piped_output_keeps_every_column_at_any_console_width():
    result = _eleven_views()
    for console in (Console(file=io.StringIO(), width=80), Console(file=io.StringIO(), width=40, force_terminal=True)):
        print_result(result, "CASIA-B-like test, rank-1 %", console=console)
        text = console.file.getvalue()
        assert "…" not in text and "\x1b[" not in text.split("mean rank-")[0]  # plain text, nothing elided
        assert _full_row(text, "bg") == _expected_bg_row(result)
        assert all(view in text for view in VIEWS)


def test_a_wide_terminal_gets_the_coloured_table():
    console = Console(file=io.StringIO(), width=200, force_terminal=True, color_system="truecolor")
    print_result(_eleven_views(), "t", console=console)
    assert "\x1b[1m" in console.file.getvalue()  # bold mean column: rich rendered it


def test_table_text_for_the_log_is_plain_and_complete():
    result = _eleven_views()
    text = table_text(result, "test table")
    assert "\x1b[" not in text and "test table" in text and "identical view excluded" in text
    assert _full_row(text, "bg") == _expected_bg_row(result)
    assert text.rstrip().splitlines()[-1] == f"mean rank-1 {pct(result.mean_rank1)}  mAP {pct(result.mean_map)}"


def test_paper_tables_markdown_and_latex(tmp_path: Path):
    result = result_for(True)
    paths = save_result(result, tmp_path, title="toy test", tta=True, baseline=result_for(False))
    paper = paths["paper_md"].read_text()
    assert "| Probe | 000 | 090 | 180 | Mean |" in paper
    assert "| CL | 100.0 | 75.0 | 100.0 | 91.7 |" in paper
    assert "Protocol toy: identical view excluded" in paper and "test-time augmentation on" in paper
    tex = paths["paper_tex"].read_text()
    assert "\\begin{tabular}{lrrrr}" in tex and "CL & 100.0 & 75.0 & 100.0 & 91.7 \\\\" in tex
    assert "Rank-1 accuracy (\\%)" in tex and "$\\rightarrow$" in tex and "->" not in tex
    results = paths["md"].read_text()
    assert "### toy test [toy]" in results and "| cl | 100.0 | 75.0 | 100.0 | 91.7 | 100.0 |" in results
    assert "### mAP [toy]" in results and "mean rank-1 95.8" in results


def test_paper_frame_takes_a_plain_dataframe_and_latex_escapes_labels():
    table = pd.DataFrame({"45_1": [0.5, np.nan], "mean": [0.5, np.nan]}, index=["nm", "txt"])
    frame = paper_frame(table)
    assert list(frame.columns) == ["45_1", "Mean"] and list(frame.index) == ["NM", "TXT"]
    tex = latex(frame, caption="a_b & c", label="tab:x")
    assert "Probe & 45\\_1 & Mean \\\\" in tex and "TXT & - & - \\\\" in tex and "a\\_b \\& c" in tex
    assert markdown(frame, "T").startswith("### T\n\n| Probe | 45_1 | Mean |\n|---|---:|---:|\n| NM | 50.0 | 50.0 |")


def test_markdown_table_aligns_numbers_and_shows_missing_values():
    frame = pd.DataFrame({"name": ["a", "b"], "x": [0.123456, None]}, index=pd.Index([1, 2], name="i"))
    assert markdown_table(frame) == "| i | name | x |\n|---|---|---:|\n| 1 | a | 0.1235 |\n| 2 | b | - |\n"
    assert markdown_table(frame, index=False).startswith("| name | x |\n|---|---:|\n")
