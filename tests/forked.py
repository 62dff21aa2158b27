"""An entry point's command line in a process of its own, forked from the test process instead of started as a new
interpreter: the child has torch and the platform already imported, and is still a process of its own, so what only
a process boundary shows stays shown: a signal sent to it, a SIGKILL, the exit status the parent reads, two processes
racing for one folder. Measured (tests/faults/test_signals.py, in one pytest process with the other fault tests): a
signalled 2-step run costs 5.4-5.8 CPU-s as ``python -m gaitgraph.train``, 1.4-1.7 forked.

What a fork does not show, a new interpreter's start and end (the ``__main__`` module, imports, finalisers at exit,
``os._exit`` before them), stays with the tests that start one: the console script smoke tests
(tests/conftest.py ``run_console``) and the full-disk cache build (tests/test_integrity.py; its checkpoint case is
forked, with the file-size limit set in the child)."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from gaitgraph import ROOT

from .conftest import DEVICE_ENTRIES, on_cpu


@dataclass
class Exited:
    """What a forked command left: its exit status (the negated signal number if a signal ended it, as
    :mod:`subprocess` reports it) and what it wrote to stdout and stderr (both in ``stdout`` when merged)."""

    returncode: int
    stdout: str
    stderr: str


class Forked:
    """``python -m <module> args`` in a forked child, started by the constructor; :meth:`wait` collects it.

    The child runs from ``cwd`` with ``env`` added to the environment (a None value removes the name), its stdout
    and stderr (``merged`` into one) written to files in ``logs``, and Python's own SIGINT and SIGTERM handling, as
    a new interpreter has them."""

    def __init__(
        self, module: str, args: list[str], logs: Path, cwd: Path = ROOT, env: dict | None = None, merged: bool = False
    ) -> None:
        if module in DEVICE_ENTRIES:
            args = one_thread(on_cpu(list(args)))
        logs.mkdir(parents=True, exist_ok=True)
        self.out, self.err = logs / "stdout.txt", logs / ("stdout.txt" if merged else "stderr.txt")
        environ: dict[str, str | None] = {"WANDB_MODE": "offline", "PYTHONPATH": str(ROOT), **(env or {})}
        sys.stdout.flush()
        sys.stderr.flush()
        self.exited: Exited | None = None
        self.pid = os.fork()
        if self.pid == 0:  # the child: it never returns
            _child(module, [importlib.util.find_spec(module).origin, *args], cwd, environ, self.out, self.err)

    def poll(self) -> Exited | None:
        """What the child left if it has ended (collected by this or an earlier call), else None."""
        if self.exited is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid == 0:
                return None
            err = self.err.read_text()
            out = self.out.read_text() if self.out != self.err else err
            self.exited = Exited(os.waitstatus_to_exitcode(status), out, err)
        return self.exited

    def wait(self, timeout: float = 300) -> Exited:
        """Wait for the child (killed after ``timeout`` seconds, a hang) and read what it wrote."""
        deadline = time.monotonic() + timeout
        while (done := self.poll()) is None:
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                raise TimeoutError(f"{self.pid} still ran after {timeout} s: {self.err.read_text()[-3000:]}")
            time.sleep(0.05)
        return done


def one_thread(overrides: list[str]) -> list[str]:
    """``overrides`` with ``trainer.num_threads=1``: a child that started more torch threads would wait for ever on
    the OpenMP thread pool this process may have started before the fork (its threads do not exist in the child)."""
    chosen = [o for o in overrides if o.split("=", 1)[0] == "trainer.num_threads"]
    if chosen not in ([], ["trainer.num_threads=1"]):
        raise ValueError(f"{chosen}: a forked run uses one torch thread")
    return overrides if chosen else [*overrides, "trainer.num_threads=1"]


def fork_app(module: str, args: list[str], logs: Path, timeout: float = 300, **kwargs) -> Exited:
    """Run ``python -m <module> args`` in a forked child and wait for it, at most ``timeout`` seconds
    (:class:`Forked`)."""
    return Forked(module, args, logs, **kwargs).wait(timeout)


def _child(module: str, argv: list[str], cwd: Path, environ: dict, out: Path, err: Path) -> None:
    """The forked child: ``<module>.main()`` with a new interpreter's stdio, signal handlers and sys.argv; it ends
    with the status of its SystemExit (1 and a traceback for any other exception) and never returns."""
    code = 1
    try:
        code = _main(module, argv, cwd, environ, out, err)
    except BaseException:  # what the interpreter prints for an exception nothing caught
        traceback.print_exc()
    finally:
        try:
            logging.shutdown()  # what atexit does in a new interpreter
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _main(module: str, argv: list[str], cwd: Path, environ: dict, out: Path, err: Path) -> int:
    """Set up the child as a new interpreter would be and run the entry point; its exit status."""
    os.chdir(cwd)
    for name, value in environ.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    for fd, path in ((1, out), (2, err)):
        opened = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        os.dup2(opened, fd)
        os.close(opened)
    # As a new interpreter opens them on files: stdout block-buffered, stderr line-buffered.
    sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, errors="backslashreplace", closefd=False)  # noqa: SIM115
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    sys.argv = argv
    try:
        importlib.import_module(module).main()
    except SystemExit as done:
        if isinstance(done.code, int) or done.code is None:
            return done.code or 0
        print(done.code, file=sys.stderr)  # sys.exit("message"), as the interpreter does
        return 1
    return 0
