"""A non-editable install works: the wheel carries the configs (pkg://gaitgraph.conf), the sweeper plugin and PsyMo-10
(gaitgraph/psymo10), and a fresh virtual environment with it installed composes and runs the entry points and reads
the default dataset from anywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import gaitgraph
from gaitgraph import ROOT


def _run(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")  # keeps setuptools' build/ out of the checkout
    done = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(ROOT)],
        cwd=build,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("gaitgraph-*.whl")
    return found


@pytest.mark.slow
def test_the_wheel_holds_configs_and_plugin_but_no_tests_or_benchmarks(wheel: Path):
    names = zipfile.ZipFile(wheel).namelist()
    assert f"gaitgraph-{gaitgraph.__version__}-py3-none-any.whl" == wheel.name
    assert {
        "gaitgraph/conf/train.yaml",
        "gaitgraph/conf/trainer/default.yaml",
        "gaitgraph/conf/debug/fdr.yaml",
        "hydra_plugins/gaitgraph_sweeper/__init__.py",
    } <= set(names)
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "data/"))]
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "gaitgraph-train = gaitgraph.train:main" in entry_points


@pytest.mark.slow
def test_the_wheel_carries_psymo10_with_its_licence_and_stays_small(wheel: Path):
    """PsyMo-10 ships as gaitgraph/psymo10 (the default dataset of the first command): every file MANIFEST.sha256
    lists, the licence unmodified beside them, and nothing else of data/."""
    archive = zipfile.ZipFile(wheel)
    shipped = {n.removeprefix("gaitgraph/psymo10/") for n in archive.namelist() if n.startswith("gaitgraph/psymo10/")}
    licence = ROOT / "data/psymo10/LICENSE.md"
    listed = {line.split(maxsplit=1)[1] for line in (licence.parent / "MANIFEST.sha256").read_text().splitlines()}
    assert shipped == listed | {licence.name, "README.md", "MANIFEST.sha256"} and len(listed) == 480
    assert archive.read(f"gaitgraph/psymo10/{licence.name}") == licence.read_bytes()
    # 40 MB of JSON deflate to about 14 MB; the rest of the wheel is under 1 MB.
    assert wheel.stat().st_size < 20e6, f"{wheel.stat().st_size / 1e6:.1f} MB"


@pytest.mark.slow
def test_a_fresh_venv_with_the_wheel_composes_and_runs(wheel: Path, tmp_path: Path):
    venv = tmp_path / "venv"
    # No pip in it (ensurepip costs 4 CPU-s): this environment's pip installs into it.
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=tmp_path).returncode == 0
    python = venv / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", "--no-index"]
    installed = _run([*pip, str(wheel)], cwd=tmp_path, env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert installed.returncode == 0, installed.stderr[-3000:]
    # The pinned dependencies come from this environment, appended after the fresh venv's own packages, so
    # the checkout's editable install of gaitgraph is not on the path.
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=tmp_path
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    where = _run(
        [str(python), "-c", "import gaitgraph; print(gaitgraph.__file__, gaitgraph.__version__)"], cwd=tmp_path
    )
    assert where.stdout.startswith(str(site)) and gaitgraph.__version__ in where.stdout, where.stdout + where.stderr
    compose = (
        "from hydra import compose, initialize_config_module; "
        "initialize_config_module('gaitgraph.conf', version_base='1.3'); "
        "cfg = compose('train', overrides=['model=gpgait']); print(cfg.model._target_, cfg.trainer.epochs)"
    )
    composed = _run([str(python), "-c", compose], cwd=tmp_path)
    assert composed.stdout.split() == ["gaitgraph.models.gpgait.GPGait", "40"], composed.stderr[-3000:]
    job = _run([str(venv / "bin" / "gaitgraph-train"), "--cfg", "job", "hparams_search=optuna_small"], cwd=tmp_path)
    assert job.returncode == 0 and "task_name: sweep_small" in job.stdout, job.stderr[-3000:]
    # Outside a checkout, data and outputs are relative to the working directory.
    paths = _run(
        [str(python), "-m", "gaitgraph.train", "--cfg", "job", "--resolve", "-p", "paths.data_dir"], cwd=tmp_path
    )
    assert paths.stdout.strip() == str(tmp_path / "data"), paths.stdout + paths.stderr
    # No data/psymo10 here: the default dataset is the copy in the wheel, and its reader finds every walk.
    read = (
        "import hashlib, pathlib; from hydra import compose, initialize_config_module; from hydra.utils import "
        "instantiate; initialize_config_module('gaitgraph.conf', version_base='1.3'); cfg = compose('train'); "
        "reader = instantiate(cfg.dataset.reader); files = reader.files(); "
        "sums = dict(l.split()[::-1] for l in (reader.root / 'MANIFEST.sha256').read_text().splitlines()); "
        "bad = [f for f in files if hashlib.sha256(f.read_bytes()).hexdigest() != sums[f.relative_to(reader.root)"
        ".as_posix()]]; walks = reader.read_unit(reader.units()[0]); "
        "print(reader.root, len(reader.units()), len(files), len(bad), len(walks))"
    )
    found = _run([str(python), "-c", read], cwd=tmp_path)
    assert found.returncode == 0, found.stderr[-3000:]
    assert found.stdout.split() == [str(site / "gaitgraph" / "psymo10"), "10", "480", "0", "48"], found.stdout


def test_pyproject_lists_every_package():
    """pyproject lists the packages by hand (gaitgraph.conf maps to conf/ outside the package folder): a new
    subpackage that is not listed would be missing from the wheel."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for top in ("gaitgraph", "hydra_plugins")
        for init in (ROOT / top).rglob("__init__.py")
    }
    # gaitgraph.psymo10 is data/psymo10 (no __init__.py: the dataset folder stays as released).
    assert listed == found | {"gaitgraph.conf", "gaitgraph.psymo10", "hydra_plugins"}
    assert (ROOT / "conf" / "__init__.py").is_file() and not (ROOT / "gaitgraph" / "conf").exists()


def test_every_console_script_has_its_smoke_test():
    """tests/conftest.py CONSOLE_SCRIPTS (what run_console starts, one smoke test each) lists pyproject's scripts."""
    import tomllib

    from .conftest import CONSOLE_SCRIPTS

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {name: target.split(":")[0] for name, target in scripts.items()} == CONSOLE_SCRIPTS
    smoke = [text for p in (ROOT / "tests").rglob("test_*.py") if "run_console(" in (text := p.read_text())]
    assert [name for name in scripts if not any(f'"{name}"' in text for text in smoke)] == []
