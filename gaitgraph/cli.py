"""What every command line entry point shares: Hydra's main with the packaged configs, and one short paragraph
for every mistake a user can make. (Ground layer: imports nothing of the platform but errors and utils, so the
data layer's own commands, ``python -m gaitgraph.data.cache``, use it too.)

A :class:`~gaitgraph.errors.GaitGraphError` (bad data, config, checkpoint, full disk, memory, a used run
directory, a diverged run) is printed as ``<kind>: <message>`` on stderr and in the run's log, and the process
exits with status 2 -- no traceback. ``HYDRA_FULL_ERROR=1`` re-raises it with the traceback, as Hydra does for its
own errors. Inside a sweep the error is raised on, so the sweeper records the trial as failed and goes on.

An error that says how to continue the run (``resume_overrides``: a diverged run, an interrupted one) gets the
command that does it appended: the same overrides, ``trainer.resume=auto``, those extra overrides and the same run
folder. An interrupt (:class:`~gaitgraph.errors.Interrupted`: SIGTERM, Ctrl-C) exits with 128 + the signal number
(143, 130), as a shell reports a process the signal ended, and ends a sweep.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import gaitgraph.process_env  # noqa: F401 - sets the process environment before torch loads

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.syntax import Syntax
from rich.text import Text
from rich.tree import Tree

import gaitgraph.conf  # noqa: F401 - the configs' resolvers and schema, in every process a command runs in
from gaitgraph import CONF_DIR, run_mode, usage
from gaitgraph.errors import DiskFullError, GaitGraphError, Interrupted, readable
from gaitgraph.utils import atomic_write, check_writable

log = logging.getLogger("gaitgraph")

#: Exit status of a user mistake (argparse's convention; 1 stays for crashes).
USAGE_EXIT = 2
#: Hydra's search path for the configs shipped inside the package.
CONFIG_PATH = "pkg://gaitgraph.conf"


def entry(config_name: str, examples: Sequence[str] = ()) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """Decorate a task function ``fn(cfg)`` into a Hydra command reading ``conf/<config_name>.yaml``; its
    ``--help`` is the short page of :mod:`gaitgraph.usage` (the module docstring, the groups, ``examples``)."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        @functools.wraps(task)
        def run(cfg: DictConfig) -> Any:
            try:
                return task(cfg)
            except KeyboardInterrupt:
                if _full_error():
                    raise
                err: GaitGraphError = ctrl_c()
            except GaitGraphError as caught:
                err = caught
            # In a sweep the sweeper reports an interrupt once, as it stops; the trial's log keeps it too.
            report(err, console=not (_in_sweep() and isinstance(err, Interrupted)))
            if _in_sweep() or _full_error():
                raise err
            leave(err)

        hydra_main = hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name=config_name)(run)

        @functools.wraps(task)
        def command() -> Any:
            if usage.wants_help(sys.argv[1:]):
                module = sys.modules[task.__module__]  # under python -m, __main__ whose spec names the module
                name = module.__spec__.name if module.__spec__ else task.__module__
                usage.show(usage.help_page(CONF_DIR, config_name, name, module.__doc__, examples))
                return None
            with run_mode.from_flags():  # one composition per command, not two
                return hydra_main()

        return command

    return decorate


def report(err: GaitGraphError, console: bool = True) -> None:
    """Print the error as one paragraph on stderr, and into the run's log when there is one."""
    text = f"{err.kind}: {err}"
    command = resume_command(err)
    if command:  # an interrupt stays one line; a longer message gets the command on a line of its own
        text += f" Resume with: {command}" if isinstance(err, Interrupted) else f"\n  resume with: {command}"
    text = readable(text)  # a file name that is not UTF-8 must not break the log file
    record = log.makeRecord(log.name, logging.ERROR, __file__, 0, text, None, None)
    for handler in logging.getLogger().handlers:  # train.log keeps the story; the console gets it once, below
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)
    if console:
        print(text, file=sys.stderr, flush=True)


def resume_command(err: GaitGraphError) -> str | None:
    """The command that continues the run ``err`` stopped (see the module docstring), or None: the error has no
    ``resume_overrides``, or this is not a single run of a Hydra command."""
    extra = getattr(err, "resume_overrides", None)
    if extra is None or not HydraConfig.initialized() or _in_sweep():
        return None
    hydra_cfg = HydraConfig.get()
    replaced = {_override_key(o) for o in extra} | {"trainer.resume", "trainer.overwrite", "hydra.run.dir"}
    kept = [o for o in hydra_cfg.overrides.task if _override_key(o) not in replaced]
    words = [
        f"gaitgraph-{hydra_cfg.job.config_name}",
        *kept,
        "trainer.resume=auto",
        *extra,
        f"hydra.run.dir={hydra_cfg.runtime.output_dir}",
    ]
    return " ".join(shlex.quote(word) for word in words)


def ctrl_c() -> Interrupted:
    """What a Ctrl-C outside the training loop (loading data, evaluating) becomes: nothing more was saved."""
    return Interrupted(
        "Ctrl-C (SIGINT): stopped; the checkpoints already written are kept, nothing more was saved.",
        128 + signal.SIGINT,
        resumable=False,
    )


class OutputCheck(Callback):
    """Hydra callback: refuse a run (or sweep) folder that cannot be written, in one paragraph, before Hydra
    creates it (Hydra's own ``mkdir`` would end in a traceback)."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_output(config.hydra.run.dir, "paths.output_root (or hydra.run.dir)")

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _check_output(config.hydra.sweep.dir, "paths.output_root (or hydra.sweep.dir)")


def exit_on_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """For code that runs outside a task function (Hydra callbacks, plain scripts): the same one paragraph."""

    @functools.wraps(fn)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            if _full_error():
                raise
            err: GaitGraphError = ctrl_c()
        except GaitGraphError as caught:
            if _full_error():
                raise
            err = caught
        report(err)
        leave(err)

    return guarded


def leave(err: GaitGraphError) -> None:
    """Exit with :data:`USAGE_EXIT` (an interrupt: its own ``exit_code``). After a failed write (a full disk) HDF5's
    handles of the file it could not finish cannot be closed any more, and finalising them at interpreter exit
    crashes: the logs are flushed and the process ends without finalisers."""
    status = getattr(err, "exit_code", USAGE_EXIT)
    if isinstance(err, DiskFullError):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def config_choices() -> dict[str, str]:
    """The chosen option of every config group (empty outside a Hydra app, e.g. under the compose API)."""
    if not HydraConfig.initialized():
        return {}
    choices = HydraConfig.get().runtime.choices
    return {k: str(v) for k, v in choices.items() if not k.startswith("hydra") and v not in (None, "null")}


def print_config_tree(cfg: DictConfig, run_dir: Path) -> None:
    """Print the composed config as a tree (one branch per group) and save it as ``<run dir>/config_tree.txt``."""
    console = Console()
    tree = Tree("config", guide_style="dim")
    for key, node in cfg.items():
        text = (OmegaConf.to_yaml(node, resolve=True) if isinstance(node, DictConfig) else f"{node!r}\n").rstrip()
        # Highlighting is only seen in a terminal; without colours the plain text renders the same characters.
        leaf = Syntax(text, "yaml", background_color="default") if console.is_terminal else Text(text)
        tree.add(f"[bold]{key}[/bold]").add(leaf)
    console.print(tree)
    buffer = io.StringIO()
    Console(file=buffer, width=120, color_system=None).print(tree)
    atomic_write(run_dir / "config_tree.txt", lambda tmp: tmp.write_text(buffer.getvalue()))


@exit_on_error
def _check_output(folder: str, key: str) -> None:
    check_writable(folder, key)


def _in_sweep() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def _override_key(override: str) -> str:
    """``trainer.lr`` of ``+trainer.lr=1``, ``~trainer.lr`` or ``++trainer.lr=1``."""
    return override.split("=", 1)[0].lstrip("+~")


def _full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"
