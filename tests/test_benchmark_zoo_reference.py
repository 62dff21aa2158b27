"""The zoo reference benchmark (benchmarks/zoo_reference.py) without FastPoseGait's checkout: the missing-checkout
paragraph and its exit status, and its summary of rounds into ratios. Nothing here runs a network."""

from __future__ import annotations

import pytest

from benchmarks import MissingReference, zoo_reference


@pytest.fixture(autouse=True)
def _no_reference(monkeypatch):
    monkeypatch.delenv(zoo_reference.ENV_VAR, raising=False)


def test_missing_checkout_says_how_to_get_it(tmp_path):
    with pytest.raises(MissingReference) as caught:
        zoo_reference.checkout()
    message = str(caught.value)
    assert zoo_reference.COMMIT in message and "git clone" in message and zoo_reference.ENV_VAR in message
    assert "\n" not in message
    with pytest.raises(MissingReference, match="holds no fastposegait/modeling/models/gpgait.py"):
        zoo_reference.checkout(tmp_path)


def test_summary_takes_medians_over_rounds_and_ratios_to_the_reference():
    def step(speed, cpu, rss):
        return {"samples_per_s": speed, "median_cpu_s": cpu, "peak_rss_mb": rss}

    runs = {
        "reference": [step(10.0, 20.0, 1000.0), step(12.0, 18.0, 1010.0), step(11.0, 19.0, 990.0)],
        "small": [step(22.0, 9.5, 900.0), step(22.0, 9.5, 900.0), {"error": "exit 1"}],
        "big": [step(33.0, 6.0, 1500.0)],
        "broken": [{"error": "exit 1"}],
    }
    out = zoo_reference.summarize(runs)
    assert out["reference"] == step(11.0, 19.0, 1000.0)
    assert out["small"]["ratio"] == {"speed": 2.0, "cpu_speed": 2.0, "peak_rss": 0.9}
    assert out["small"]["faster_and_smaller"] and not out["big"]["faster_and_smaller"]
    assert out["broken"] == {"error": "exit 1"}
