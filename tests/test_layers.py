"""The package's layers import downwards only (docs/design.md#layers): every import of every module is parsed."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from gaitgraph import ROOT

PACKAGE = ROOT / "gaitgraph"
#: Lowest layer first; a module may import its own layer and the layers before it.
LAYERS = [
    (
        "ground",
        [
            "gaitgraph",
            "gaitgraph.skeletons",
            "gaitgraph.errors",
            "gaitgraph.utils",
            "gaitgraph.schema",
            "gaitgraph.cli",
        ],
    ),
    ("data", ["gaitgraph.data"]),
    ("loggers", ["gaitgraph.loggers"]),
    ("models", ["gaitgraph.models"]),
    ("evaluation", ["gaitgraph.evaluation"]),
    ("engine", ["gaitgraph.engine"]),
    (
        "entry",
        [
            "gaitgraph.train",
            "gaitgraph.evaluate",
            "gaitgraph.visualize",
            "gaitgraph.predict",
            "gaitgraph.predict_input",
            "gaitgraph.sweeps",
            "gaitgraph.compare",
            "gaitgraph.compare_plots",
        ],
    ),
]
#: Pairs of layers that must not see each other although their order would allow it.
FORBIDDEN = {("models", "data"), ("models", "loggers"), ("evaluation", "loggers")}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the longest prefix that names ``module``."""
    best, length = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = index, len(prefix)
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best


def platform_imports(path: Path) -> list[str]:
    """The ``gaitgraph...`` modules that ``path`` imports, at any depth (TYPE_CHECKING imports included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
    return [name for name in found if name == "gaitgraph" or name.startswith("gaitgraph.")]


MODULES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in MODULES:
        layer_of(module_name(path))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_point_downwards(path: Path):
    own = layer_of(module_name(path))
    own_name = LAYERS[own][0]
    for name in platform_imports(path):
        target = _resolvable(name)
        if target is None:
            continue
        other = layer_of(target)
        assert other <= own, f"{module_name(path)} ({own_name}) imports {target} ({LAYERS[other][0]}): upwards"
        assert (own_name, LAYERS[other][0]) not in FORBIDDEN, f"{module_name(path)} imports {target}"


def _resolvable(name: str) -> str | None:
    """``name`` cut to the module it names (``from gaitgraph.x import y`` may name a function ``y``)."""
    parts = name.split(".")
    while parts:
        candidate = ROOT.joinpath(*parts)
        if candidate.with_suffix(".py").is_file() or (candidate / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return None


def test_the_checker_sees_an_upward_import(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("from gaitgraph.engine.trainer import Trainer\nimport gaitgraph.data.cache\n")
    targets = [_resolvable(name) for name in platform_imports(bad)]
    assert "gaitgraph.engine.trainer" in targets and layer_of("gaitgraph.engine.trainer") > layer_of("gaitgraph.data")
