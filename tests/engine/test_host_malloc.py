"""trainer.host_malloc: glibc keeps mid-sized freed blocks for reuse instead of re-faulting fresh mappings; each model
family declares its own policy (``auto``), which the engine applies."""

import json
import os
import re
import subprocess
import sys

import pytest
from hydra.utils import get_class

from gaitgraph.engine import build
from gaitgraph.engine.build import setup_process
from gaitgraph.engine.distributed import DistContext
from gaitgraph.engine.host_malloc import MAX_MB, configure_malloc, resolve_host_malloc
from gaitgraph.models.resgcn import ResGCN

from ..conftest import compose_train

#: Allocate, touch and free a 40 MiB tensor: 5 warm-up rounds (glibc settles which free chunk it reuses),
#: then report the minor page faults of 30 more.
PROBE = """
import json, resource, sys
import torch
from gaitgraph.engine.host_malloc import configure_malloc
applied = configure_malloc(*json.loads(sys.argv[1]))
def round_trip():
    x = torch.empty(10 << 20)  # 40 MiB: above glibc's largest dynamic mmap threshold (32 MiB)
    x.fill_(1.0)
    del x
for _ in range(5):
    round_trip()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(30):
    round_trip()
print(json.dumps({"faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, "applied": applied}))
"""


def _faults(mmap_mb, trim_mb) -> dict:
    env = {**os.environ, "THP_MEM_ALLOC_ENABLE": "0"}  # count 4 KiB faults
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps([mmap_mb, trim_mb])],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
@pytest.mark.system
def test_configured_thresholds_reuse_freed_blocks_instead_of_refaulting():
    glibc_default = _faults(None, None)
    tuned = _faults(64, 2047)
    assert glibc_default["applied"] == {}
    assert tuned["applied"] == {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047}
    # 30 rounds x 40 MiB = 307,200 pages re-faulted by a fresh mapping each round; the heap blocks are reused
    # (glibc now and then places the block at a new heap address, so a round or two may still fault)
    assert glibc_default["faults"] > 30 * 10_000
    assert tuned["faults"] < glibc_default["faults"] / 6


def test_nothing_to_set_is_a_no_op_and_bad_values_name_the_option():
    assert configure_malloc(None, None) == {}
    with pytest.raises(ValueError, match=r"trainer.host_malloc.mmap_threshold_mb=-1: expected 0\.\.\d+ MiB"):
        configure_malloc(-1, None)
    with pytest.raises(ValueError, match="trainer.host_malloc.trim_threshold_mb"):
        configure_malloc(None, MAX_MB + 1)


@pytest.mark.parametrize("option", ["resgcn_n21_r8", "gaitgraph1", "gaittr", "gpgait"])
def test_setup_process_applies_the_model_familys_declared_policy(monkeypatch, option):
    applied = []
    monkeypatch.setattr(build, "configure_host_memory", applied.append)
    cfg = compose_train(["trainer.device=cpu", "trainer.num_threads=1", f"model={option}"])
    assert cfg.trainer.host_malloc == "auto"  # the default
    setup_process(DistContext(), cfg)
    assert applied == [get_class(cfg.model._target_).host_malloc]


def test_a_given_policy_wins_and_null_applies_nothing(monkeypatch):
    applied = []
    monkeypatch.setattr(build, "configure_host_memory", applied.append)
    given = "trainer.host_malloc={mmap_threshold_mb:16,huge_pages:false}"
    setup_process(DistContext(), compose_train(["trainer.device=cpu", "trainer.num_threads=1", given]))
    setup_process(
        DistContext(), compose_train(["trainer.device=cpu", "trainer.num_threads=1", "trainer.host_malloc=null"])
    )
    assert applied == [{"mmap_threshold_mb": 16, "huge_pages": False}, {}]


def test_gaitgraph2_keeps_the_measured_platform_default():
    assert ResGCN.host_malloc == {"mmap_threshold_mb": 64, "trim_threshold_mb": 2047, "huge_pages": True}


def test_an_unknown_policy_names_the_option_and_its_forms():
    with pytest.raises(ValueError, match=r"trainer.host_malloc='fast': expected 'auto'.*null.*mmap_threshold_mb"):
        resolve_host_malloc("fast", ResGCN)
    with pytest.raises(ValueError, match="trainer.host_malloc"):
        resolve_host_malloc({"mmap_mb": 1}, ResGCN)


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ({"mmap_threshold_mb": "abc"}, "mmap_threshold_mb='abc'"),
        ({"mmap_threshold_mb": -1}, "mmap_threshold_mb=-1"),
        ({"trim_threshold_mb": MAX_MB + 1}, f"trim_threshold_mb={MAX_MB + 1}"),
        ({"trim_threshold_mb": 1.5}, "trim_threshold_mb=1.5"),
        ({"mmap_threshold_mb": True}, "mmap_threshold_mb=True"),
        ({"huge_pages": "maybe"}, "huge_pages='maybe'"),
        ({"huge_pages": 0}, "huge_pages=0"),
    ],
)
def test_a_wrong_value_in_a_given_policy_names_its_key(given, key):
    with pytest.raises(ValueError, match=f"^trainer.host_malloc.{re.escape(key)}: expected"):
        resolve_host_malloc(given, ResGCN)
    assert resolve_host_malloc({"mmap_threshold_mb": 0, "trim_threshold_mb": None, "huge_pages": True}, ResGCN)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl")
def test_huge_pages_off_reaches_the_kernel():
    code = (
        "from gaitgraph.engine.host_malloc import configure_host_memory; "
        "print(configure_host_memory({'huge_pages': False})); "
        "print([l for l in open('/proc/self/status') if l.startswith('THP_enabled')])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "{'huge_pages': False}" in done.stdout
    assert "THP_enabled:\\t0" in done.stdout or "THP_enabled" not in done.stdout  # kernels before 5.0 do not show it
