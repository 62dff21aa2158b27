"""A results table (a DataFrame: rows = probe conditions, columns = views + mean) as text a reader can use:
on the terminal, in a log, in Markdown and in LaTeX. Never cut: a table wider than the terminal, or printed
where stdout is no terminal (CI, nohup, SLURM), is written as plain text at its natural width.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from gaitgraph.utils import markdown_table

#: Wide enough for any table: only used to measure and render at the natural width.
_UNLIMITED = 100_000


def pct(value: Any) -> str:
    """A fraction as a percentage with one decimal (the papers' format); NaN/None as ``-``."""
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{float(value) * 100:.1f}"


def rich_table(
    frame: pd.DataFrame,
    title: str | None = None,
    caption: str | None = None,
    cell: Callable[[Any], str] = pct,
    dim: tuple[str, ...] = (),
) -> Table:
    """The frame as a rich Table: the index (named by ``frame.index.name``) first, ``mean`` columns in bold,
    columns named in ``dim`` dimmed (e.g. a baseline beside the model)."""
    table = Table(title=title, caption=caption)
    table.add_column(str(frame.index.name or ""), style="bold", no_wrap=True)
    for column in frame.columns:
        style = "dim" if column in dim else "bold" if column == "mean" else None
        table.add_column(str(column), justify="right", style=style, no_wrap=True)
    for label, row in frame.iterrows():
        table.add_row(str(label), *(cell(v) for v in row.tolist()))
    return table


def natural_width(renderable: Any) -> int:
    """Columns the renderable takes when nothing constrains it."""
    return Console(file=io.StringIO(), width=_UNLIMITED).measure(renderable).maximum


def plain_text(renderable: Any) -> str:
    """The renderable as plain text (no colour), at its natural width."""
    console = Console(file=io.StringIO(), width=natural_width(renderable), color_system=None, highlight=False)
    console.print(renderable)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines()) + "\n"


def show(renderable: Any, console: Console) -> None:
    """Print in colour when the console is a terminal wide enough, else as plain text at full width."""
    if console.is_terminal and natural_width(renderable) <= console.width:
        console.print(renderable)
    else:
        console.out(plain_text(renderable), end="", highlight=False)


def markdown(
    frame: pd.DataFrame, title: str | None = None, caption: str | None = None, cell: Callable[[Any], str] = pct
) -> str:
    """A Markdown table with an optional heading and a caption line below."""
    parts = [f"### {title}\n\n" if title else "", markdown_table(frame, cell=cell)]
    if caption:
        parts.append(f"\n{caption}\n")
    return "".join(parts)


_LATEX_SPECIAL = {c: "\\" + c for c in "&%$#_{}"} | {
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def latex_escape(text: str) -> str:
    """Text safe inside a LaTeX document (``->`` becomes an arrow)."""
    return "".join(_LATEX_SPECIAL.get(c, c) for c in str(text).replace("->", "\x00")).replace("\x00", r"$\rightarrow$")


def latex(frame: pd.DataFrame, caption: str, label: str, cell: Callable[[Any], str] = pct) -> str:
    """A booktabs ``table`` with a ``tabular``: index column left, the others right-aligned."""
    head = [latex_escape(frame.index.name or "")] + [latex_escape(c) for c in frame.columns]
    lines = [
        "% needs \\usepackage{booktabs}",
        "\\begin{table}[t]",
        "\\centering",
        f"\\caption{{{latex_escape(caption)}}}",
        f"\\label{{{label}}}",
        f"\\begin{{tabular}}{{l{'r' * len(frame.columns)}}}",
        "\\toprule",
        " & ".join(head) + " \\\\",
        "\\midrule",
    ]
    for name, row in frame.iterrows():
        lines.append(" & ".join([latex_escape(name)] + [cell(v) for v in row.tolist()]) + " \\\\")
    lines += ["\\bottomrule", "\\end{tabular}", "\\end{table}"]
    return "\n".join(lines) + "\n"
