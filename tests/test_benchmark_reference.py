"""The reference benchmark (benchmarks/reference.py) without the original's checkout: the missing-checkout
paragraph and its exit status, and the ratios it reports; scripts/benchmark.py checks its checkout and
zoo_reference's before any section runs. Nothing here runs the original or the network."""

from __future__ import annotations

import subprocess
import sys

import pytest

from benchmarks import ROOT_DIR, MissingReference, reference, zoo_reference


@pytest.fixture(autouse=True)
def _no_reference(monkeypatch):
    monkeypatch.delenv(reference.ENV_VAR, raising=False)


def test_missing_checkout_says_how_to_get_it():
    with pytest.raises(MissingReference) as caught:
        reference.checkout()
    message = str(caught.value)
    assert reference.COMMIT in message and "git clone" in message and reference.ENV_VAR in message
    assert "\n" not in message


def test_a_folder_without_the_original_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(reference.ENV_VAR, str(tmp_path))
    with pytest.raises(MissingReference, match="holds no GaitGraph/models/ResGCNv1/nets.py"):
        reference.checkout()


def test_the_command_exits_2_with_one_paragraph_and_no_traceback(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.reference", "--ref", str(tmp_path / "nowhere")],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "git clone" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("section", ["reference", "zoo_reference"])
def test_scripts_benchmark_checks_the_checkout_before_any_section(section: str, tmp_path, monkeypatch):
    monkeypatch.delenv(zoo_reference.ENV_VAR, raising=False)
    done = subprocess.run(
        [sys.executable, "scripts/benchmark.py", "data", section, "--out", str(tmp_path)],
        cwd=ROOT_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2 and "git clone" in done.stderr and "Traceback" not in done.stderr
    assert not list(tmp_path.iterdir())  # the data section never ran


def test_ratios_are_project_over_original():
    original = {"samples_per_s": 10.0, "median_cpu_s": 100.0, "peak_rss_mb": 10_000.0}
    fast = {"samples_per_s": 60.0, "median_cpu_s": 25.0, "peak_rss_mb": 4_000.0}
    big = {"samples_per_s": 60.0, "median_cpu_s": 10.0, "peak_rss_mb": 9_000.0}
    out = reference.ratios({"original": original, "fast": fast, "big": big, "broken": {"error": "exit 1"}})
    assert out["fast"] == {
        "samples_per_s": 6.0,
        "samples_per_cpu_s": 4.0,
        "peak_rss": 0.4,
        "meets_target": True,
        "meets_target_by_cpu_s": False,
    }
    assert not out["big"]["meets_target"] and "broken" not in out
    assert "error" in reference.ratios({"original": {"error": "exit 1"}, "fast": fast})


def test_rounds_combine_to_medians_and_the_largest_peak():
    def run(speed: float, cpu: float, rss: float) -> dict:
        return {"samples_per_s": speed, "median_cpu_s": cpu, "peak_rss_mb": rss}

    per_round = [
        {"original": run(10.0, 100.0, 9_000.0), "fast": run(50.0, 20.0, 4_000.0)},
        {"original": run(20.0, 90.0, 10_000.0), "fast": {"error": "exit 1"}},
        {"original": run(40.0, 60.0, 9_500.0), "fast": run(40.0, 25.0, 4_500.0)},
    ]
    combined = reference.combine_rounds(per_round)
    # medians (20, 90), not means (23.3, 83.3) nor the first or last round
    assert combined["original"]["samples_per_s"] == 20.0 and combined["original"]["median_cpu_s"] == 90.0
    assert combined["original"]["peak_rss_mb"] == 10_000.0 and len(combined["original"]["rounds"]) == 3
    assert combined["fast"] == {"error": "exit 1"}
