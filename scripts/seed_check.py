"""Re-run a sweep's best and worst trial with other seeds: ``python scripts/seed_check.py <sweep dir> [--seeds 1 2]``.

Tells whether the sweep's spread is larger than seed-to-seed noise. See gaitgraph/sweep/seed_check.py.
"""

from __future__ import annotations

import sys

from gaitgraph.sweep.seed_check import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
