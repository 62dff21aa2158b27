"""Rank the runs below a folder and plot them: ``python scripts/compare_runs.py <multirun dir or runs folder>``.

Groups runs by Optuna study and dataset (each ranked on its own) and writes <dir>/comparison/ (runs.csv,
metric_per_trial.png, metric_vs_<param>.png for swept parameters, and param_importances.png, optuna_history.png,
optuna_slice.png when the sweep's Optuna study is found); prints the ranked tables. See gaitgraph/sweep/compare.py.
"""

from __future__ import annotations

import sys

from gaitgraph.sweep.compare import compare


def main(argv: list[str]) -> int:
    """Entry point; returns the exit status."""
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    try:
        compare(argv[0])
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
