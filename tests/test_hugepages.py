"""The commands put torch's large CPU tensors on transparent huge pages unless the user says otherwise."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")

#: Import gaitgraph.cli first (as `python -m gaitgraph.train` does), fill a 64 MiB tensor, report its pages.
PROBE = """
import json, os
import gaitgraph.cli, torch
x = torch.ones(16 << 20)
x.add_(1)
huge_kb = next(int(l.split()[1]) for l in open('/proc/self/smaps_rollup') if l.startswith('AnonHugePages'))
print(json.dumps({"env": os.environ.get("THP_MEM_ALLOC_ENABLE"), "huge_kb": huge_kb}))
"""


def _probe(**env: str) -> dict:
    base = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**base, **env}, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _thp_mode() -> str | None:
    """The kernel's THP mode ("always", "madvise" or "never"); None where the kernel has no THP."""
    if not THP_MODE.exists():
        return None
    return THP_MODE.read_text().split("[", 1)[1].split("]", 1)[0]


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc smaps_rollup")
@pytest.mark.system
def test_large_tensors_use_huge_pages_by_default_and_the_user_can_turn_it_off():
    on = _probe()
    off = _probe(THP_MEM_ALLOC_ENABLE="0")
    assert on["env"] == "1" and off["env"] == "0"
    mode = _thp_mode()
    if mode in ("always", "madvise"):
        assert on["huge_kb"] >= 32 * 1024, on  # most of the 64 MiB tensor sits on 2 MiB pages
    if mode == "madvise":
        assert off["huge_kb"] < 8 * 1024, off  # without torch's madvise the kernel gives 4 KiB pages
