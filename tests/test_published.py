"""docs/published.yaml, the published numbers per recipe, agrees with the recipes and with the README's tables.

Every key is an ``experiment=`` option, every recipe whose header comment quotes a published number has an entry
holding each number that comment quotes, each result names a protocol its dataset config declares, and the
"Model zoo" and "Reproducing the published numbers" tables of README.md print exactly the entry's numbers, in
order."""

from __future__ import annotations

import functools
import itertools
import re
from typing import Any

import pytest
import yaml

from gaitgraph import ROOT

from .conftest import compose_train, config_options

PUBLISHED: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "published.yaml").read_text())
#: A published rank-1 or mean: a number with decimals (no year, no joint count, no section sign).
NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?!\w|\.\d)")
#: One sentence of a header comment (a full stop followed by a capital or a backquote starts the next).
SENTENCE = re.compile(r"(?<=\.)\s+(?=[A-Z`])")


def numbers(text: str) -> list[float]:
    """The decimal numbers of ``text``, in order."""
    return [float(n) for n in NUMBER.findall(text)]


def entry_numbers(key: str) -> list[float]:
    """The numbers of a recipe's entry in reading order: each result's values, then its mean."""
    out: list[float] = []
    for result in PUBLISHED[key]["results"]:
        out += [float(v) for v in result["values"].values()]
        out += [float(result["mean"])] if "mean" in result else []
    return out


def header_quote(option: str) -> str:
    """The sentences of ``conf/experiment/<option>.yaml``'s header comment that quote a published number."""
    lines = (ROOT / "conf" / "experiment" / f"{option}.yaml").read_text().splitlines()
    leading = itertools.takewhile(lambda line: line.startswith("#"), lines)
    header = " ".join(line.lstrip("# ") for line in leading if "@package" not in line)
    sentences = SENTENCE.split(header)
    return " ".join(s for s in sentences if re.search(r"Published|reports", s) and numbers(s))


@functools.cache
def dataset_protocols(option: str) -> list[str]:
    """The protocol names ``dataset=<option>`` declares."""
    return list(compose_train([f"dataset={option}"]).dataset.protocols)


def readme_table(heading: str, column: str) -> dict[str, str]:
    """``experiment option -> cell of column`` of the table with that column under ``## <heading>`` in README.md."""
    section = (ROOT / "README.md").read_text().split(f"\n## {heading}")[1].split("\n## ")[0]
    tables = re.findall(r"(?m)(?:^\|.*\n)+", section)
    rows = next(
        rows
        for rows in ([line.strip().strip("|").split("|") for line in t.splitlines()] for t in tables)
        if column in [c.strip() for c in rows[0]]
    )
    header = [c.strip() for c in rows[0]]
    key = next(i for i, c in enumerate(header) if c in ("experiment", "config"))
    out = {}
    for row in rows[2:]:
        option = re.search(r"`(?:experiment=)?(\w+)`", row[key])
        assert option, f"README.md ## {heading}: no experiment option in '{row[key].strip()}'"
        out[option.group(1)] = row[header.index(column)]
    return out


README_TABLES = [("Model zoo (GaitGraph1, GaitTR, GPGait)", "published"), ("Reproducing", "published rank-1 %")]


def test_every_key_is_an_experiment_option_and_every_quoted_recipe_has_an_entry():
    assert set(PUBLISHED) <= set(config_options("experiment")), "docs/published.yaml names no such experiment"
    quoted = {o for o in config_options("experiment") if header_quote(o)}
    assert quoted == set(PUBLISHED), f"recipes quoting a number vs entries: {sorted(quoted ^ set(PUBLISHED))}"


@pytest.mark.parametrize("option", sorted(PUBLISHED))
def test_an_entry_holds_what_its_recipe_quotes_and_names_real_protocols(option: str):
    entry = PUBLISHED[option]
    notes = " ".join(str(r.get("notes", "")) for r in entry["results"])
    held = set(entry_numbers(option)) | set(numbers(notes))
    quoted = numbers(header_quote(option))
    assert quoted and set(quoted) <= held, f"conf/experiment/{option}.yaml quotes {quoted}, the entry holds {held}"
    recipe_dataset = compose_train([f"experiment={option}"]).dataset
    first = entry["results"][0]
    assert first["protocol"] in recipe_dataset.protocols, f"{option}: the recipe's dataset has no {first['protocol']}"
    for result in entry["results"]:
        assert {"dataset", "protocol", "source", "values"} <= set(result), f"{option}: {result}"
        where = f"{option}: dataset={result['dataset']}"
        assert result["protocol"] in dataset_protocols(result["dataset"]), f"{where} has no {result['protocol']}"


@pytest.mark.parametrize(("heading", "column"), README_TABLES)
def test_the_readme_tables_print_the_published_numbers(heading: str, column: str):
    table = readme_table(heading, column)
    assert table, f"README.md ## {heading}: no rows"
    for option, cell in table.items():
        assert option in PUBLISHED, f"README.md ## {heading} quotes {option}, which docs/published.yaml lacks"
        assert numbers(cell) == entry_numbers(option), f"README.md ## {heading}, {option}: {cell.strip()}"


def test_the_number_patterns_read_what_they_should():
    assert numbers("CASIA-B NM 86.37 / BG 76.50, mean 76.04 (CVPRW'22, COCO-17, NM#1-4); 11.20.") == [
        86.37,
        76.5,
        76.04,
        11.2,
    ]
    assert SENTENCE.split("one 2.5. Two `x`. three") == ["one 2.5.", "Two `x`. three"]
