"""trainer.host_malloc: glibc keeps mid-sized freed blocks for reuse instead of re-faulting fresh mappings."""

import json
import os
import subprocess
import sys

import pytest

from gaitgraph.engine.host_malloc import MAX_MB, configure_malloc

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
