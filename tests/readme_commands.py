"""README's bash blocks as commands, and how the README tests run them as written on the default data.

Training commands get a fast tail (1 epoch of 2 small batches) appended, sweeps one trial; placeholders
(``ckpt_path=...``, ``outputs/<date>/<time>``) become the files the earlier commands wrote. A command whose
comment says ``needs:`` (data or services this machine does not have) is only composed (``--cfg job``), as is one
that a dedicated test runs at its own budget of steps and epochs (:data:`RUN_BY`); a few lines that are not runs
(``make test`` itself, activating the venv, uploads, a TensorBoard server) are skipped.

A plain command of an entry point (``gaitgraph-train ...``, ``python -m gaitgraph.evaluate ...``: no shell syntax)
runs its Hydra app in this process (tests/conftest.py run_app) with the words the shell would pass, and a plain
``python scripts/<name>.py ...`` its script (run_script); a ``make`` command runs the recipe make prints for it
(``make -n``: the Makefile, the target, its prerequisites and ARGS as make reads them), each line like a README
command; everything else (torchrun, shell syntax) runs in bash. The console scripts themselves start in their smoke
tests, and make itself in tests/test_makefile.py.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from gaitgraph import ROOT

from .conftest import CONSOLE_SCRIPTS, AppResult, run_app, run_script

#: The tail of a training command: one epoch of two batches of 8 windows of 8 frames (8 from PsyMo-10's 4 training
#: subjects: SupCon, which sees the global batch under DDP, always has positive pairs).
FAST = [
    "trainer.epochs=1",
    "trainer.limit_batches=2",
    "trainer.batch_size=8",
    "dataset.sequence_length=8",
    "trainer.device=cpu",
    "baseline=false",
    "trainer.checkpoint_every_steps=1",
]
SWEEP = ["hydra.sweeper.n_trials=1"]
#: Lines that are not runs of the platform on this machine.
NOT_RUNS = ("make test", "source ", "conda ", "wandb sync", "tensorboard ", "WANDB_API_KEY=", "make reproduce-")
TRAINING = ("gaitgraph-train", "python -m gaitgraph.train", "torchrun ")
#: README commands that a dedicated test runs at their own steps and epochs, a stronger check than the fast tail
#: here: the README tests only compose them, so the suite runs each once (tests/test_readme.py checks the names).
RUN_BY = {
    f"gaitgraph-train debug={option}": "tests/test_debug.py::test_each_debug_config_runs_and_keeps_its_promise"
    for option in ("fdr", "limit", "overfit", "profiler")
}


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, continuation lines joined, comments kept."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                commands.append(line.strip())
    return commands


def split_comment(line: str) -> tuple[str, str]:
    """(command, comment): the comment starts at a `#` preceded by whitespace outside quotes."""
    quote = None
    for i, char in enumerate(line):
        if char in "'\"" and quote in (None, char):
            quote = None if quote else char
        elif char == "#" and quote is None and i > 0 and line[i - 1].isspace():
            return line[:i].strip(), line[i + 1 :].strip()
    return line.strip(), ""


class Workspace:
    """A scratch root (data linked, outputs here) and what earlier commands produced, for the placeholders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for shared in ("data", "scripts"):  # the checkout's data and scripts, read where README's paths say
            (root / shared).symlink_to(ROOT / shared, target_is_directory=True)
        self.env = {
            **os.environ,
            "GAITGRAPH_ROOT": str(root),
            "WANDB_MODE": "offline",
            "SWEEP_DIR": str(root / "sweep"),
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HYDRA_FULL_ERROR": "0",
        }

    def latest(self, pattern: str) -> Path:
        found = sorted(self.root.glob(pattern), key=lambda p: p.stat().st_mtime)
        assert found, f"no {pattern} under {self.root} yet"
        return found[-1]

    def concrete(self, command: str) -> str:
        """Placeholders replaced by real paths."""
        if "ckpt_path=" in command:
            ckpt = self.latest("outputs/**/checkpoints/best.pt")
            command = re.sub(r"ckpt_path=\S+", f"ckpt_path={ckpt}", command)
        if "embeddings.h5" in command:
            command = re.sub(
                r"gallery=\S+embeddings\.h5", f"gallery={self.latest('outputs/**/embeddings.h5')}", command
            )
        command = command.replace("input=my_walks/", "input=data/psymo10/skeletons/7")
        if "outputs/multirun/<date>/<time>" in command:
            command = command.replace("outputs/multirun/<date>/<time>", str(self.root / "sweep"))
        return command

    def run(self, command: str):
        """Run ``command`` from the workspace root (a make target from the checkout, :meth:`make`); a
        CompletedProcess or AppResult."""
        if command.startswith("make "):
            return self.make(command)
        return self._run(command, self.root)

    def make(self, command: str) -> AppResult:
        """Run the recipe that ``make <target> ...`` would run, as make prints it (``make -n``, from the checkout),
        line after line until one fails, as make does; a line that starts this interpreter (``.venv/bin/python``)
        runs as ``python ...``, so a plain entry point or script runs in this process instead of a new one."""
        plan = subprocess.run(
            ["make", "--no-print-directory", "-n", *shlex.split(command)[1:]],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if plan.returncode:
            return AppResult(plan.returncode, plan.stdout, plan.stderr)
        this_python = os.path.abspath(sys.executable)
        done, out, err = AppResult(0, "", ""), [], []
        for line in plan.stdout.splitlines():
            first, _, rest = line.partition(" ")
            if os.path.abspath(ROOT / first) == this_python:
                line = f"python {rest}"
            done = self._run(line, ROOT, flags=MAKE_SHELL_FLAGS)
            out.append(done.stdout)
            err.append(done.stderr)
            if done.returncode:
                break
        return AppResult(done.returncode, "".join(out), "".join(err))

    def _run(self, command: str, cwd: Path, flags: tuple[str, ...] = ()):
        """Run one command from ``cwd``: in this process when :func:`in_process` allows it, else ``bash flags -c``."""
        entry = in_process(command)
        if entry is not None:
            module, args = entry
            if module.endswith(".py"):
                return run_script(cwd / module, args, env=self.env, cwd=cwd)
            return run_app(module, args, env=self.env, cwd=cwd)
        return subprocess.run(
            ["bash", *flags, "-c", command], cwd=cwd, env=self.env, capture_output=True, text=True, timeout=600
        )


#: How make runs each recipe line: the Makefile's .SHELLFLAGS, less the final ``-c``.
MAKE_SHELL_FLAGS = tuple(
    shlex.split(re.search(r"^\.SHELLFLAGS := (.*) -c$", (ROOT / "Makefile").read_text(), flags=re.M)[1])
)


#: What makes a command need the shell: expansions, pipes, lists, redirections, subshells, globs (outside '...').
SHELL_SYNTAX = re.compile(r"[$|;&<>`()*?\\\"]")


def in_process(command: str) -> tuple[str, list[str]] | None:
    """(module, arguments) of a plain entry-point command, or (``scripts/<name>.py``, arguments) of a plain script
    command, as the shell would pass them; None for anything else."""
    if SHELL_SYNTAX.search(re.sub(r"'[^']*'", "", command)):
        return None
    words = shlex.split(command)
    if words and words[0] in CONSOLE_SCRIPTS:
        return CONSOLE_SCRIPTS[words[0]], words[1:]
    if words[:2] == ["python", "-m"] and len(words) > 2 and words[2] in CONSOLE_SCRIPTS.values():
        return words[2], words[3:]
    if len(words) > 1 and words[0] == "python" and re.fullmatch(r"scripts/\w+\.py", words[1]):
        return words[1], words[2:]
    return None


def prepared(command: str) -> str:
    """The command as the test runs it: training fast, sweeps one trial, make targets through ARGS."""
    if command.startswith("make "):
        extra = FAST + (SWEEP if command.startswith("make sweep") else [])
        return f"{command} ARGS={shlex.quote(' '.join(extra))}"
    if command.startswith(TRAINING) and "--cfg" not in command and "-sc " not in command:
        return " ".join([command, *FAST, *(SWEEP if is_multirun(command) else [])])
    return command


def composed_only(command: str) -> str:
    """The command printing its composed config instead of running (``--cfg job``; Hydra takes it without ``-m``)."""
    if is_multirun(command):
        command = re.sub(r"(?<=\s)(-m|--multirun)(?=\s)", "", command, count=1)
    return f"{command} --cfg job"


def is_multirun(command: str) -> bool:
    """Whether the training command has Hydra's ``-m`` (after the entry point: torchrun's own ``-m`` names a module)."""
    words = shlex.split(command)
    entry = next(i for i, word in enumerate(words) if word in ("gaitgraph-train", "gaitgraph.train"))
    return "-m" in words[entry + 1 :] or "--multirun" in words[entry + 1 :]


COMMANDS = readme_commands((ROOT / "README.md").read_text())
#: README's commands in three parts that run side by side under pytest-xdist (each in its own test file): training
#: up to the first torchrun line; torchrun and the debug configs; then evaluation, caches, sweeps, trackers,
#: comparison and prediction (they start from a fresh run).
_TORCHRUN = next(i for i, line in enumerate(COMMANDS) if line.startswith("torchrun "))
_FIRST_TOOL = next(i for i, line in enumerate(COMMANDS) if line.startswith("python -m gaitgraph.evaluate"))
TRAINING_PART, LAUNCH_PART, TOOLS_PART = COMMANDS[:_TORCHRUN], COMMANDS[_TORCHRUN:_FIRST_TOOL], COMMANDS[_FIRST_TOOL:]


def run_as_written(space: Workspace, commands: list[str]) -> int:
    """Run each command (see the module doc); the number of commands that ran for real."""
    ran = 0
    for line in commands:
        command, comment = split_comment(line)
        if command.startswith(NOT_RUNS):
            continue
        if "needs:" in comment or command in RUN_BY:
            if command.startswith(TRAINING[:2]):
                done = space.run(composed_only(command))
                assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
            continue
        done = space.run(space.concrete(prepared(command)))
        assert done.returncode == 0, f"{command}\n{done.stdout[-1500:]}\n{done.stderr[-2500:]}"
        assert "Traceback" not in done.stderr, command
        ran += 1
    return ran
