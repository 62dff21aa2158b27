"""The training loop: global batches -> augmentation -> this rank's shard -> model -> loss -> optimiser step.

Everything optional (checkpoints, validation and selection, weight averaging, logging, progress, profiling) is a
:class:`~gaitgraph.engine.callbacks.Callback`; everything resume restores is in the
:class:`~gaitgraph.engine.state.TrainState`. The loop itself only trains, refuses to go on from a non-finite loss
or a non-finite or exploding gradient norm (:mod:`~gaitgraph.engine.divergence`: that step is never applied, so
every checkpoint on disk stays finite), and stops cleanly on SIGTERM or Ctrl-C (:mod:`~gaitgraph.engine.interrupt`:
the current step is finished and saved first).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.engine.checkpoint import LAST, Checkpointer
from gaitgraph.engine.distributed import DistContext, gather_output, shard
from gaitgraph.engine.divergence import GradNormWatch, total_grad_norm
from gaitgraph.engine.interrupt import EXIT_CODES, StopSignals, any_rank
from gaitgraph.engine.state import TrainState
from gaitgraph.errors import Interrupted, NonFiniteError
from gaitgraph.models.base import GaitModel


@dataclass
class Precision:
    """Mixed precision: ``dtype`` None = float32; fp16 needs ``scaler`` (a GradScaler), bf16 does not."""

    dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None


class Trainer:
    """Runs ``epochs`` epochs of ``state`` and calls ``callbacks`` around each step and epoch.

    ``model`` is what the forward runs through (the network, or its DDP wrapper); ``state.model`` is the plain
    network that is saved, averaged and evaluated. The scheduler is stepped every batch when ``step_per_batch``,
    else every epoch, unless a callback sets :attr:`scheduler_enabled` to False (weight averaging does).
    ``grad_spike_factor`` is the divergence check's spike rule (``trainer.grad_spike_factor``; None: only
    non-finite gradient norms stop the run).
    """

    def __init__(
        self,
        state: TrainState,
        *,
        model: torch.nn.Module,
        loss_fn: torch.nn.Module,
        augment: Callable[..., torch.Tensor],
        epochs: int,
        device: torch.device,
        checkpointer: Checkpointer,
        callbacks: Sequence[Callback] = (),
        ctx: DistContext | None = None,
        precision: Precision | None = None,
        grad_clip: float | None = None,
        grad_spike_factor: float | None = None,
        step_per_batch: bool = True,
    ) -> None:
        self.state = state
        self.model = model
        self.loss_fn = loss_fn
        self.augment = augment
        self.epochs = epochs
        self.device = device
        self.checkpointer = checkpointer
        self.callbacks = list(callbacks)
        self.ctx = ctx or DistContext()
        self.precision = precision or Precision()
        self.grad_clip = grad_clip
        self.step_per_batch = step_per_batch
        self.scheduler_enabled = True
        self.grad_watch = GradNormWatch(
            grad_spike_factor, clipped=bool(grad_clip), scaled=self.precision.scaler is not None
        )
        self.signals = StopSignals()

    @property
    def network(self) -> GaitModel:
        """The plain network (never the DDP wrapper)."""
        return self.state.model

    def fit(self) -> None:
        """Train from where the state stands (epoch 0, or a resumed position) to ``epochs``.

        SIGTERM and SIGINT stop it after the current step (or after the epoch's end when that step was the epoch's
        last), with ``last.pt`` written and :class:`~gaitgraph.errors.Interrupted` raised.
        """
        if self.checkpointer.last_good is None and self.state.step and (self.checkpointer.folder / LAST).is_file():
            self.checkpointer.last_good = (self.checkpointer.folder / LAST, self.state.step)  # what it resumed
        try:
            with self.signals:
                self._call("on_fit_start")
                for epoch in range(self.state.epoch, self.epochs):
                    self._epoch(epoch)
                    self._stop_if_signalled()
                self._call("on_fit_end")
            if self.signals.received:  # it came after the last check (final checkpoints): end as the signal ends
                signal.raise_signal(self.signals.received)
        except BaseException as err:
            if isinstance(err, NonFiniteError) and getattr(err, "resume_overrides", None) is None:
                # a checkpoint refused for NaN weights (not a step this loop judged): the same way on
                err.resume_overrides = self.lower_lr_overrides() if self.checkpointer.last_good else None
            self._call("on_exception", err)
            raise

    def _epoch(self, epoch: int) -> None:
        state = self.state
        if not state.batches.in_epoch:
            state.start_epoch_counters()
        self._call("on_train_epoch_start", epoch)
        self.model.train()
        lr = state.optimizer.param_groups[0]["lr"]
        for x, y in state.batches:
            start = time.perf_counter()
            loss, lr, n, norm = self._step(x, y)
            state.step += 1
            state.epoch_loss_sum += loss * n
            state.epoch_samples += n
            state.epoch_seconds += time.perf_counter() - start
            rate = state.epoch_samples / max(state.epoch_seconds, 1e-9)
            self._call(
                "on_train_batch_end",
                {"train/loss": loss, "train/lr": lr, "train/samples_per_s": rate, "train/grad_norm": norm},
            )
            if state.batches.in_epoch:  # after an epoch's last step, its end (validation, checkpoint) comes first
                self._stop_if_signalled()
        if state.scheduler is not None and not self.step_per_batch and self.scheduler_enabled:
            state.scheduler.step()
        state.epoch = epoch + 1
        record = {
            "epoch": epoch + 1,
            "train/loss_epoch": state.epoch_loss_sum / max(state.epoch_samples, 1),
            "train/lr": lr,  # the rate of the epoch's last step
            "train/samples_per_s": state.epoch_samples / max(state.epoch_seconds, 1e-9),
            "train/epoch_seconds": state.epoch_seconds,
        }
        state.history.append(record)
        self._call("on_train_epoch_end", record)

    def _step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float, int, float]:
        """One optimisation step on a global batch; returns (loss, the learning rate it used, global batch size,
        gradient norm before any clipping)."""
        state, ctx, precision = self.state, self.ctx, self.precision
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        # The global batch is augmented on every rank (cheap) so a run's random numbers do not depend on the
        # number of ranks; each rank then keeps its shard.
        x = self.augment(x, generator=state.augment_rng)
        part = shard(len(y), ctx.rank, ctx.world_size) if ctx.distributed else slice(None)
        inputs = self.network.input_features(x[part])
        with torch.autocast(self.device.type, dtype=precision.dtype, enabled=precision.dtype is not None):
            output = self.model(inputs)
        output, labels = gather_output(output, y[part])
        loss = self.loss_fn(output, labels)
        value = loss.item()
        if not torch.isfinite(loss):
            raise self._diverged(f"the training loss became {value}")
        lr = state.optimizer.param_groups[0]["lr"]
        state.optimizer.zero_grad(set_to_none=True)
        # DDP averages gradients over ranks while each rank's loss reaches only its own shard's outputs.
        scaled = loss * ctx.world_size
        if precision.scaler is not None:
            precision.scaler.scale(scaled).backward()
            precision.scaler.unscale_(state.optimizer)
        else:
            scaled.backward()
        self._call("on_after_backward")
        # One norm over all gradients (the clip computes it anyway); under DDP they are already averaged, so every
        # rank judges the same number and all stop together.
        if self.grad_clip:
            norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip))
        else:
            norm = float(total_grad_norm(self.model.parameters()))
        problem = self.grad_watch.judge(norm)
        if problem:
            raise self._diverged(problem)
        self._call("on_before_optimizer_step", state.optimizer)
        if precision.scaler is not None:
            precision.scaler.step(state.optimizer)  # skips a step whose fp16 gradients overflowed
            precision.scaler.update()
        else:
            state.optimizer.step()
        if state.scheduler is not None and self.step_per_batch and self.scheduler_enabled:
            state.scheduler.step()
        return value, lr, len(y), norm

    def _diverged(self, what: str) -> NonFiniteError:
        """The error for a step that was not applied, with the way to continue from the last good checkpoint
        (``resume_overrides``: the entry point prints them as a command)."""
        state = self.state
        where = f"step {state.step + 1} (epoch {state.epoch + 1}, batch {state.batches.position})"
        if not self.checkpointer.last_good:
            return NonFiniteError(
                f"{what} at {where}; that step was not applied. No checkpoint was written yet: start again with a "
                "lower optimizer.optimizer.lr or with trainer.grad_clip set."
            )
        path, step = self.checkpointer.last_good
        err = NonFiniteError(
            f"{what} at {where}; that step was not applied. The last good checkpoint is {path} (step {step}), "
            "untouched: continue it with trainer.resume=auto and a lower learning rate (below) or a gradient clip "
            "(trainer.grad_clip=<max norm> trainer.resume_changes=[trainer.grad_clip])."
        )
        err.resume_overrides = self.lower_lr_overrides()
        return err

    def lower_lr_overrides(self) -> list[str]:
        """Overrides that resume this run with a ten times lower learning rate (empty when it has none)."""
        lr = self.state.config.get("optimizer", {}).get("optimizer", {}).get("lr")
        if not isinstance(lr, (int, float)):
            return []
        return ["trainer.resume_changes=[optimizer.optimizer.lr]", f"optimizer.optimizer.lr={lr / 10:g}"]

    def _stop_if_signalled(self) -> None:
        """After a step: when any rank got SIGTERM or SIGINT, write ``last.pt`` and raise Interrupted (every rank
        asks, so all stop after the same step)."""
        signum = any_rank(self.ctx, self.device, self.signals.received)
        if not signum:
            return
        state = self.state
        self.signals.saving = True
        path = self.save_checkpoint(LAST)
        self.signals.saving = False
        batches = state.batches
        where = (
            f"step {state.step} (epoch {state.epoch + 1}, batch {batches.position} of {len(batches)})"
            if batches.in_epoch
            else f"step {state.step} (the end of epoch {state.epoch})"
        )
        raise Interrupted(f"{signal.Signals(signum).name} after {where}: saved {path}.", EXIT_CODES[signum])

    def save_checkpoint(self, name: str, *more: str) -> Path | None:
        """Write the whole TrainState as ``checkpoints/<name>`` and as each of ``more`` (serialised once; rank 0
        only; returns the path of ``name`` there)."""
        if not self.ctx.is_main:
            return None
        return self.checkpointer.save(self.state.state_dict(), name, *more)

    def training_inputs(self) -> Iterator[torch.Tensor]:
        """Model inputs of one pass over the training batches (augmented as in training), e.g. to recompute the
        BatchNorm statistics of averaged weights."""
        for x, _ in self.state.batches:
            yield self.network.input_features(self.augment(x.to(self.device), generator=self.state.augment_rng))

    def _call(self, hook: str, *args: Any) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(self, *args)
