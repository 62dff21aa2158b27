"""Watch a sweep's Optuna study in the browser: optuna-dashboard on the sweep's storage, bound to 127.0.0.1.

    python scripts/dashboard.py outputs/multirun/<date>/<time> [--port 8080]     (or: make dashboard SWEEP_DIR=...)

The storage URL comes from the sweep folder's ``studies.json`` (written by the sweeper at sweep start; an RDB URL
such as ``sqlite:///...`` or ``postgresql+psycopg2://...`` is accepted instead of a folder). The server listens
on 127.0.0.1 only: from another machine, forward the port (``ssh -L 8080:127.0.0.1:8080 <host>``). It shows
every study of that storage, with their trials (COMPLETE, PRUNED, FAIL, RUNNING), curves and parameters, and
updates while the sweep runs. Needs the ``dashboard`` extra (``pip install -e '.[dashboard]'``; pinned:
optuna-dashboard 0.14.0 is the last release that declares support for Optuna 2, and it needs bottle 0.12, whose
``static_file`` still marks the gzipped bundle it serves as gzip-encoded).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from gaitgraph.cli import exit_on_error
from gaitgraph.errors import StudyError
from gaitgraph.sweep.study import STUDY_FILE

log = logging.getLogger(__name__)

HOST = "127.0.0.1"


def storage_of(target: str) -> str:
    """The RDB URL to serve: ``target`` itself when it is a URL, else the one storage its ``studies.json`` names."""
    if "://" in target:
        return target
    record = Path(target) / STUDY_FILE
    if not record.is_file():
        raise StudyError(
            f"{record} not found: give the folder of a sweep (python -m gaitgraph.train -m hparams_search=optuna... "
            "writes studies.json there) or the study's storage URL (e.g. sqlite:///outputs/optuna/studies.db)"
        )
    urls = sorted(set(json.loads(record.read_text()).values()))
    if len(urls) != 1:
        raise StudyError(f"{record} names {len(urls)} storages ({', '.join(urls) or 'none'}): give one URL instead")
    return urls[0]


@exit_on_error
def serve(target: str, port: int) -> None:
    """Serve the dashboard of ``target``'s storage on http://127.0.0.1:<port>/ until interrupted."""
    url = storage_of(target)
    try:
        from optuna_dashboard import run_server
    except ImportError as err:
        raise StudyError(
            f"optuna-dashboard is not installed ({err}): pip install -e '.[dashboard]' (make install does)"
        ) from None
    print(f"dashboard of {url} at http://{HOST}:{port}/dashboard/ (Ctrl-C stops it)", flush=True)
    run_server(url, host=HOST, port=port)


def main(argv: list[str] | None = None) -> int:
    """Entry point (``argv``: the command line's arguments when None); returns the exit status."""
    parser = argparse.ArgumentParser(prog="dashboard", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="a sweep folder (holding studies.json) or an RDB storage URL")
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (default 8080)")
    args = parser.parse_args(argv)
    serve(args.sweep, args.port)  # bottle's server ends quietly on Ctrl-C
    return 0
