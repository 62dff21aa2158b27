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
            "gaitgraph.sweep",  # the sweeper and the tools beside a sweep
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


#: How long a function may be (the contributor guide's limit); a longer one says why on the line after its ``def``
#: with a comment that starts ``# long:``.
MAX_FUNCTION_LINES = 60


def long_functions(path: Path) -> list[str]:
    """``name (N lines)`` for each function in ``path`` longer than the limit that does not say why."""
    lines = path.read_text().splitlines()
    found = []
    for node in ast.walk(ast.parse("\n".join(lines), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = node.end_lineno - node.lineno + 1
            explained = any(line.strip().startswith("# long:") for line in lines[node.lineno : node.body[0].lineno])
            if length > MAX_FUNCTION_LINES and not explained:
                found.append(f"{node.name} ({length} lines)")
    return found


@pytest.mark.parametrize(
    "path", MODULES + sorted((ROOT / "hydra_plugins").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT))
)
def test_functions_are_short(path: Path):
    assert not long_functions(path), f"{path.relative_to(ROOT)}: split {long_functions(path)}"


def test_the_length_check_sees_a_long_function(tmp_path: Path):
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n\n\ndef g():\n    # long: a table\n{body}\n")
    assert long_functions(tmp_path / "long.py") == [f"f ({MAX_FUNCTION_LINES + 1} lines)"]
