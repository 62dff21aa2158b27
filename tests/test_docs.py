"""Every document the repository cites is in the repository, down to the cited section.

Comments, docstrings, configs, the README and docs/ itself cite documents as paths from the repository root
(``docs/formats.md#casia-b``, ``data/psymo10/README.md §3``); inside docs/, links and bare names are siblings
(``[metrics](protocols.md#metrics)``). Anywhere else a bare ``formats.md`` or ``reference §2.4`` points at text
that is not here and fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Where citations are looked for besides README.md and docs/: the package (code and configs), tests,
#: benchmarks, scripts.
SCANNED = ("gaitgraph", "tests", "benchmarks", "scripts")
TEXT_SUFFIXES = {".py", ".yaml", ".yml", ".md"}
#: A cited markdown file, optionally with a section anchor: ``docs/protocols.md#metrics``.
MD_CITATION = re.compile(r"(?<![\w./-])((?:[\w.-]+/)*[\w-]+\.md)(?:#([\w-]+))?")
#: A relative link target inside docs/: ``[text](formats.md#poseset)``, ``![picture](dataflow.png)``.
MD_LINK = re.compile(r"\]\((?![a-z]+:)([^)#\s]*)(?:#([\w-]+))?\)")
#: Markdown files the platform writes into run directories (eval/results.md, eval/paper_table.md): named in code
#: and tests as outputs, not cited as documents.
OUTPUTS = ("results.md", "paper_table.md")
#: A section sign must follow a cited file (``README.md §3``), never a bare name (``reference §2.4``).
SECTION_SIGN = re.compile(r"([\w./`-]*)\s*§")


def scanned_files(root: Path) -> list[Path]:
    """Text files that may cite documents (this file is left out: it spells out the bad patterns)."""
    files = [p for top in SCANNED for p in (root / top).rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file()]
    files += [root / "README.md", *(root / "docs").glob("*.md")]
    return sorted(p for p in files if p != Path(__file__).resolve())


def slug(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(md: Path) -> set[str]:
    """Anchors of every heading of a markdown file (lines inside code fences are not headings)."""
    found, fenced = set(), False
    for line in md.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := re.match(r"#{1,6} (.+)", line)):
            found.add(slug(m.group(1)))
    return found


def broken_citations(path: Path, root: Path) -> list[str]:
    """``file:line: problem`` for each citation in ``path`` that does not resolve inside ``root``."""
    problems = []
    in_docs = path.parent == root / "docs"
    for number, line in enumerate(path.read_text().splitlines(), 1):
        where = f"{path.relative_to(root)}:{number}"
        # Paths are from the root; inside docs/ a bare name and a link target are siblings in docs/.
        targets = [
            (root / t if "/" in t or not in_docs else path.parent / t, t, a)
            for t, a in (m.groups() for m in MD_CITATION.finditer(line))
            if not t.endswith(OUTPUTS)
        ]
        if in_docs:
            targets += [(path.parent / t, t, a) for t, a in (m.groups() for m in MD_LINK.finditer(line)) if t]
        for cited, target, anchor in targets:
            if not cited.is_file():
                problems.append(f"{where}: cites {target}, which is not in the repository (cite docs/<name>.md)")
            elif anchor and anchor not in anchors(cited):
                problems.append(f"{where}: {target} has no section #{anchor}")
        for m in SECTION_SIGN.finditer(line):
            if not m.group(1).strip("`").endswith(".md"):
                problems.append(f"{where}: '{m.group(0)}' cites a section of no file in the repository")
    return problems


def test_every_citation_resolves_inside_the_repository():
    problems = [p for path in scanned_files(ROOT) for p in broken_citations(path, ROOT)]
    assert problems == []


def test_the_scan_sees_citations_from_code_tests_and_configs():
    cited: dict[str, set[str]] = {}
    for path in scanned_files(ROOT):
        for target, _ in (m.groups() for m in MD_CITATION.finditer(path.read_text())):
            cited.setdefault(target, set()).add(path.relative_to(ROOT).parts[0])
    assert {"docs/formats.md", "docs/protocols.md", "docs/original-network.md", "docs/pitfalls.md"} <= set(cited)
    assert cited["docs/original-network.md"] >= {"gaitgraph", "tests"}
    assert {"docs/design.md", "docs/protocols.md"} <= {t for t, places in cited.items() if "README.md" in places}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("# values from formats.md", "cites formats.md"),
        ('"""Loss (reference §5)."""', "'reference §'"),
        ("# see docs/protocols.md#no-such-section", "has no section #no-such-section"),
        ("# see docs/nowhere.md", "cites docs/nowhere.md"),
        ("# 14 frames (README §3)", "'README §'"),
    ],
)
def test_a_citation_outside_the_repository_is_reported(tmp_path, line, problem):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "protocols.md").write_text("# Protocols\n\n## Metrics\n")
    source = tmp_path / "module.py"
    source.write_text(f"x = 1\n{line}\n")
    problems = broken_citations(source, tmp_path)
    assert len(problems) == 1 and problems[0].startswith("module.py:2: ") and problem in problems[0]


def test_citations_and_links_that_resolve_pass(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "protocols.md").write_text("# Protocols\n\n```yaml\n# not a heading\n```\n## Test-time augmentation\n")
    (docs / "design.md").write_text("![flow](flow.png) and [metrics](protocols.md#test-time-augmentation)\n")
    (docs / "flow.png").write_bytes(b"")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "README.md").write_text("## 3. Frames\n")
    source = tmp_path / "module.py"
    source.write_text("# docs/protocols.md#test-time-augmentation and data/README.md §3\n")
    assert anchors(docs / "protocols.md") == {"protocols", "test-time-augmentation"}
    assert broken_citations(source, tmp_path) == []
    assert broken_citations(docs / "design.md", tmp_path) == []
    (docs / "flow.png").unlink()
    (problem,) = broken_citations(docs / "design.md", tmp_path)
    assert problem.startswith("docs/design.md:1: cites flow.png, which is not in the repository")
