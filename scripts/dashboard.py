"""Open a sweep's Optuna study in the browser: ``python scripts/dashboard.py <sweep dir or storage URL> [--port 8080]``.

Serves optuna-dashboard on http://127.0.0.1:<port>/dashboard/ for the storage the sweep's studies.json names.
See gaitgraph/sweep/dashboard.py.
"""

from __future__ import annotations

import sys

from gaitgraph.sweep.dashboard import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
