"""environment.yml must carry exactly pyproject's pins, and the install must be repeatable."""

from __future__ import annotations

import re
import tomllib

import yaml

from gaitgraph import ROOT

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)\s*(==|=)\s*([^\s;]+)$")


def _parse(spec: str) -> tuple[str, str]:
    match = PIN.match(spec.strip())
    assert match, f"'{spec}' is not an exact pin (name==version)"
    return match.group(1).lower().replace("_", "-"), match.group(3)


def pyproject_pins() -> dict[str, str]:
    """Every pin of pyproject.toml: the dependencies and every extra (``make install`` installs them all)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    return dict(_parse(d) for d in deps)


def environment_pins() -> tuple[dict[str, str], str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    pins: dict[str, str] = {}
    python = ""
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"]:
                if not spec.startswith("-e"):
                    pins.update([_parse(spec)])
        elif dep.startswith("python="):
            python = dep.split("=", 1)[1]
        elif dep != "pip":
            pins.update([_parse(dep)])
    return pins, python


def test_every_pyproject_dependency_is_exactly_pinned():
    pins = pyproject_pins()
    assert pins["torch"] == "2.13.0"
    assert len(pins) >= 15
    runtime = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(d.startswith(("pytest", "psycopg2", "hydra-submitit", "ruff")) for d in runtime), (
        "test, database, cluster and lint tools are extras, not runtime dependencies"
    )


def test_environment_yml_matches_pyproject_pins():
    env, python = environment_pins()
    assert python == "3.11"
    assert env == pyproject_pins(), "environment.yml and pyproject.toml disagree"


def test_pin_parser_rejects_ranges():
    for bad in ("torch>=2.13", "numpy", "pandas~=3.1"):
        try:
            _parse(bad)
        except AssertionError:
            continue
        raise AssertionError(f"{bad} was accepted as a pin")


def test_readme_starts_with_the_two_setup_commands_and_ci_runs_its_test_command():
    readme = (ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.splitlines() if line.strip()]
    assert commands == ["make train", "make test"]
    assert readme.index("```bash") < readme.index("\n## "), "the set-up commands must come first"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci[-1] == "make test", ".ci/run must end by running README's test command"
