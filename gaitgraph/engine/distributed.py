"""DDP set-up: spawn workers from inside the Hydra task, or join a ``torchrun`` launcher's process group.

Under ``torchrun`` every rank runs the whole Hydra app, so every rank must agree on one run directory: pin it,
e.g. ``torchrun --nproc_per_node 4 -m gaitgraph.train hydra.run.dir=outputs/ddp/${TORCHELASTIC_RUN_ID}``
(``$TORCHELASTIC_RUN_ID`` is the same on all ranks; with ``--standalone`` pass your own fixed name). The
device of a rank is ``cuda:$LOCAL_RANK`` (never the global rank, which exceeds the GPU count on node 2+).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from gaitgraph.engine.interrupt import forward_signals
from gaitgraph.errors import ConfigError, GaitGraphError
from gaitgraph.models.base import ModelOutput

log = logging.getLogger(__name__)

TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")

#: What the fork server of spawned ranks imports once, so that each rank forks with torch and the run's modules
#: already loaded (with the module of the launched function, see :func:`spawn`). gaitgraph.process_env comes first:
#: the server's torch reads the variables it sets (OMP_WAIT_POLICY, THP_MEM_ALLOC_ENABLE) when it loads, and a
#: rank forked from the server keeps what its libraries read then. Importing these runs no tensor op (no OpenMP
#: thread pool, which a forked child could hang on) and no CUDA call (a forked child cannot use CUDA initialised
#: before the fork): tests/test_process_env.py checks both.
PRELOAD = (
    "gaitgraph.process_env",
    "torch",
    "torch.distributed",
    "torch._dynamo",  # a rank's first nn.init call imports it (torch._refs' compile guard): 1 CPU-s a rank
    "gaitgraph.engine.build",
    "gaitgraph.engine.results",
    "gaitgraph.evaluation.evaluator",
    "gaitgraph.loggers",
    "gaitgraph.engine.fork_server",
)
#: Prefixes of the variables a process reads as it starts or loads torch's libraries: forked ranks get the values
#: the server started with, so a launch under other values spawns fresh interpreters instead (see start_method).
LOAD_TIME_PREFIXES = ("PYTHON", "LD_", "GLIBC_", "MALLOC_", "OMP_", "GOMP_", "KMP_", "MKL_", "THP_")
_server_env: dict[str, str] | None = None  # those variables as the fork server of this process started with them


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the process group (the defaults describe a plain single-process run)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # ranks on this machine (they share its memory)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        """Wait for every rank (no-op in a single process)."""
        if self.distributed:
            dist.barrier()

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (a picklable object)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def device(self, name: str) -> torch.device:
        """This rank's device for ``trainer.device`` (auto | cpu | cuda): ``cuda:LOCAL_RANK`` on GPUs."""
        return resolve_device(name, self.local_rank)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The device for ``trainer.device``: ``auto`` picks CUDA when present, ``cuda`` without a GPU is an error.

    On CUDA the device is ``cuda:local_rank`` (and becomes the current one), never the global rank, which exceeds
    the GPU count on the second node and beyond.
    """
    if name not in ("auto", "cpu") and not name.startswith("cuda"):
        raise ConfigError("trainer.device", name, "auto, cpu or cuda")
    use_cuda = name.startswith("cuda") or (name == "auto" and torch.cuda.is_available())
    if not use_cuda:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("trainer.device", name, "auto or cpu on this machine: no CUDA device is available")
    if local_rank >= torch.cuda.device_count():
        raise ConfigError(
            "trainer.devices", local_rank + 1, f"at most {torch.cuda.device_count()} (the GPUs visible to this node)"
        )
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def free_port() -> int:
    """A TCP port that was free a moment ago (bind port 0), so parallel runs and tests never collide."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_for(device_name: str) -> str:
    """nccl for CUDA runs, gloo on CPU."""
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    return "nccl" if cuda else "gloo"


def launched_by_torchrun() -> bool:
    """True when a launcher (torchrun) started this process as one rank of several."""
    return all(v in os.environ for v in TORCHRUN_VARS) and int(os.environ["WORLD_SIZE"]) > 1


def torchrun_rank() -> int:
    """This process's global rank under torchrun (0 outside it)."""
    return int(os.environ.get("RANK", 0))


def join_torchrun(device_name: str) -> DistContext:
    """Join the launcher's process group (MASTER_ADDR/PORT, RANK, WORLD_SIZE come from its environment)."""
    env = os.environ
    ctx = DistContext(
        int(env["RANK"]),
        int(env["WORLD_SIZE"]),
        int(env["LOCAL_RANK"]),
        int(env.get("LOCAL_WORLD_SIZE", env["WORLD_SIZE"])),
    )
    if not dist.is_initialized():
        dist.init_process_group(backend_for(device_name), rank=ctx.rank, world_size=ctx.world_size)
    return ctx


def launch(fn: Callable[..., Any], devices: int, device_name: str, args: tuple, run_dir: Path) -> Any:
    """Run ``fn(ctx, *args)`` on every rank of this run and return rank 0's result: as one rank of a
    ``torchrun`` launch, in ``devices`` spawned processes, or in this process."""
    if launched_by_torchrun():
        ctx = join_torchrun(device_name)
        if not ctx.is_main:  # every rank runs Hydra's logging set-up; one voice in train.log
            logging.getLogger().setLevel(logging.WARNING)
        try:
            return fn(ctx, *args)
        finally:
            dist.destroy_process_group()
    if devices > 1:
        return spawn(fn, devices, device_name, args, run_dir)
    return fn(DistContext(), *args)


def spawn(fn: Callable[..., Any], world_size: int, device_name: str, args: tuple, run_dir: Path) -> Any:
    """Run ``fn(ctx, *args)`` in ``world_size`` new processes; returns rank 0's return value.

    The ranks are forked from a server process that has imported :data:`PRELOAD` (started at this process's first
    launch, reused by the later ones: sweep trials), not spawned as fresh interpreters that import torch each. They
    still see this process's environment, working directory and ``sys.path`` as of this call, as spawned children
    would. ``fn`` must be importable (module level) and ``args`` picklable. A platform error
    (:class:`~gaitgraph.errors.GaitGraphError`) raised on rank 0 is raised again here, so the entry point reports
    it as if it had happened in this process.
    """
    if backend_for(device_name) == "nccl" and world_size > torch.cuda.device_count():
        raise ConfigError("trainer.devices", world_size, f"at most {torch.cuda.device_count()} (the visible GPUs)")
    method = start_method(fn)
    port = free_port()
    results = mp.get_context(method).SimpleQueue()
    try:
        ranks = mp.start_processes(
            _spawned,
            args=(world_size, port, device_name, fn, args, run_dir, results, dict(os.environ)),
            nprocs=world_size,
            join=False,
            start_method=method,
        )
        # SIGTERM/Ctrl-C: every rank saves and stops after the same step. The pids are the ranks' own, whichever
        # process forked them.
        with forward_signals(ranks.pids()):
            while not ranks.join():
                pass
    except mp.ProcessExitedException:
        if results.empty():
            raise
    if results.empty():
        raise RuntimeError("rank 0 finished without a result")
    outcome, value = results.get()
    if outcome == "error":
        raise value
    return value


def start_method(fn: Callable[..., Any]) -> str:
    """``forkserver`` for the ranks of a launch, or ``spawn`` where forked ranks would differ from spawned ones: the
    variables of :data:`LOAD_TIME_PREFIXES` changed since the server started (or there is no fork server here).

    The first call sets the server's preload (:data:`PRELOAD` and the module of ``fn``); the server starts with the
    launch, in this process's environment of that moment.
    """
    global _server_env
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return "spawn"
    env = {k: v for k, v in os.environ.items() if k.startswith(LOAD_TIME_PREFIXES)}
    if _server_env is None:
        _server_env = env
        extra = () if fn.__module__ == "__main__" else (fn.__module__,)  # the child re-runs __main__ as spawn does
        multiprocessing.set_forkserver_preload([*PRELOAD, *extra])
    return "forkserver" if env == _server_env else "spawn"


def _spawned(
    rank: int,
    world_size: int,
    port: int,
    device_name: str,
    fn: Callable[..., Any],
    args: tuple,
    run_dir: Path,
    results: Any,
    environ: dict[str, str],
) -> None:
    # A rank forked from the server has the server's environment and blocks SIGTERM (gaitgraph/engine/fork_server.py):
    # it takes the parent's environment of the launch and the default SIGTERM before anything else.
    os.environ.clear()
    os.environ.update(environ)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    _worker_logging(rank, run_dir)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world_size),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world_size),
    )
    dist.init_process_group(backend_for(device_name), rank=rank, world_size=world_size)
    try:
        value = fn(DistContext(rank, world_size, rank, world_size), *args)
        if rank == 0:
            results.put(("ok", value))
    except GaitGraphError as err:
        if rank == 0:  # handed to the parent, which raises it again; the other ranks just stop
            results.put(("error", err))
        raise SystemExit(1) from None
    finally:
        dist.destroy_process_group()


def _worker_logging(rank: int, run_dir: Path) -> None:
    """Spawned children lose Hydra's logging set-up: rank 0 logs to the run's train.log and the console."""
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if rank == 0:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(Path(run_dir) / "train.log"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        handlers=handlers,
        force=True,
        format=f"[%(asctime)s][%(name)s][%(levelname)s][rank {rank}] - %(message)s",
    )


def shard(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s contiguous slice of a global batch of ``n`` (sizes differ by at most one)."""
    base, extra = divmod(n, world_size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def gather_global_batch(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Under DDP, the embeddings ([n, ...]: vectors or part embeddings) and labels of every rank concatenated in rank
    order (the global batch).

    Only this rank's part carries gradient (the others are copies); with DDP averaging gradients over ranks,
    scaling the loss by the world size gives exactly the single-process gradient of the global-batch loss.
    Ranks may hold different batch sizes (an uneven last batch). Outside DDP the inputs come back unchanged.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return embeddings, labels
    world, rank = dist.get_world_size(), dist.get_rank()
    size = torch.tensor([len(labels)], device=embeddings.device)
    sizes = [torch.zeros_like(size) for _ in range(world)]
    dist.all_gather(sizes, size)
    longest = int(max(s.item() for s in sizes))
    pad = longest - len(labels)
    padded_emb = torch.cat([embeddings.detach(), embeddings.new_zeros((pad, *embeddings.shape[1:]))])
    padded_lab = torch.cat([labels, labels.new_zeros(pad)])
    all_emb = [torch.empty_like(padded_emb) for _ in range(world)]
    all_lab = [torch.empty_like(padded_lab) for _ in range(world)]
    dist.all_gather(all_emb, padded_emb)
    dist.all_gather(all_lab, padded_lab)
    parts = [e[: int(s.item())] for e, s in zip(all_emb, sizes)]
    parts[rank] = embeddings
    return torch.cat(parts), torch.cat([lab[: int(s.item())] for lab, s in zip(all_lab, sizes)])


def gather_output(output: ModelOutput, labels: torch.Tensor) -> tuple[ModelOutput, torch.Tensor]:
    """The global batch of a model output in float32 (losses are computed in full precision even under
    autocast): embedding and logits of every rank (see :func:`gather_global_batch`), the feature map dropped
    (no loss reads it). Outside DDP only the precision changes."""
    embedding, global_labels = gather_global_batch(output.embedding.float(), labels)
    logits = None if output.logits is None else gather_global_batch(output.logits.float(), labels)[0]
    return ModelOutput(embedding, None, logits), global_labels
