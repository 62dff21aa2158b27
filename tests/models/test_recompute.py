"""Every model family declares what it may recompute (whole blocks; ResGCN families also a partial level):
recomputation gives the plain step's gradients and BatchNorm buffers, and the memory estimate of each level is near
a measured peak."""

from __future__ import annotations

import copy
import ctypes
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.nn.modules.module import register_module_forward_pre_hook

from gaitgraph.engine.budget import TRANSIENT_FACTOR, MemoryEstimate, estimate
from gaitgraph.engine.recompute import recompute_activations
from gaitgraph.models.base import GaitModel
from gaitgraph.models.gaitgraph1 import GaitGraph1
from gaitgraph.models.gaittr import GaitTR
from gaitgraph.models.gpgait import GPGait
from gaitgraph.models.resgcn import ResGCN

from ..conftest import skeleton

#: Tiny members of each family (COCO-17) and how many targets each declares per level: full = blocks, partial =
#: the two bottleneck expansions (spatial, temporal) of every Bottleneck module.
FAMILIES: dict[str, tuple[Callable[[], GaitModel], dict[str, int]]] = {
    # 3 input branches (an initial Basic module, then one Bottleneck) + 2 main-stream Bottleneck modules
    "resgcn": (
        lambda: ResGCN(skeleton("coco17"), [1, 1, 1, 1], "Bottleneck", 8, 32),
        {"full": 3 * 2 + 2, "partial": (3 + 2) * 2},
    ),
    # a Basic module, then 3 Bottleneck modules
    "gaitgraph1": (
        lambda: GaitGraph1(skeleton("coco17"), [3, 32, 32], [32, 64, 64], 32, 8),
        {"full": 2 + 2, "partial": 3 * 2},
    ),
    "gaittr": (lambda: GaitTR(skeleton("coco17"), [10, 32, 64]), {"full": 2, "partial": 0}),
    # 3 branches x (1 shared + 2 layers in each stream: global + 3 partition streams, 1 for the angle branch)
    "gpgait": (
        lambda: GPGait(skeleton("coco17"), [2, 16, 16, 32], 4, share_num=1),
        {"full": 3 * 1 + 2 * 2 * 4 + 2 * 2, "partial": 0},
    ),
}
#: (family, level) for each level a family declares.
DECLARED = [(family, level) for family, (_, counts) in FAMILIES.items() for level, n in counts.items() if n]


def _poses(n: int, t: int) -> torch.Tensor:
    return torch.randn(n, t, 17, 3, generator=torch.Generator().manual_seed(1)) * 20 + 100


def _loss(model: GaitModel, x: torch.Tensor) -> torch.Tensor:
    return sum((out.float() ** 2).mean() for out in model(x) if out is not None)


def _module_calls(model: GaitModel, run: Callable[[], None]) -> Counter[str]:
    """How often each submodule of ``model`` (by name) ran during ``run()``."""
    names = {id(module): name for name, module in model.named_modules()}
    calls: Counter[str] = Counter()
    hook = register_module_forward_pre_hook(lambda module, args: calls.update([names.get(id(module), "")]))
    try:
        run()
    finally:
        hook.remove()
    return calls


def test_each_family_declares_its_levels():
    for build, counts in FAMILIES.values():
        model = build()
        assert {level: len(model.recompute_targets(level)) for level in counts} == counts


@pytest.mark.parametrize(("family", "level"), DECLARED)
def test_recomputation_gives_the_plain_gradients_and_buffers(family: str, level: str):
    build, counts = FAMILIES[family]
    torch.manual_seed(0)
    plain = build().train()
    recomputed = copy.deepcopy(plain)
    assert recompute_activations(recomputed, level) == counts[level]
    assert recompute_activations(recomputed, level) == 0  # wrapped once only
    x = plain.input_features(_poses(6, 12))
    calls = []
    for model in (plain, recomputed):
        torch.manual_seed(3)  # the same dropout masks (GaitTR); recomputation replays them
        calls.append(_module_calls(model, lambda m=model: _loss(m, x).backward()))
    # What ran again in the backward pass lies inside the targets, and inside every one of them
    rerun = {name for name, n in calls[1].items() if n > calls[0][name]}
    names = {id(module): name for name, module in recomputed.named_modules()}
    targets = {names[id(module)] for module, _ in recomputed.recompute_targets(level)}
    assert all(any(name.startswith(f"{t}.") for t in targets) for name in rerun), rerun - targets
    assert all(any(name.startswith(f"{t}.") for name in rerun) for t in targets)
    grads = {name: p.grad for name, p in recomputed.named_parameters()}
    for name, p in plain.named_parameters():
        if p.grad is None:
            assert grads[name] is None, name
        else:
            torch.testing.assert_close(grads[name], p.grad, rtol=1e-5, atol=1e-6, msg=name)
    buffers = dict(recomputed.named_buffers())
    for name, b in plain.named_buffers():
        torch.testing.assert_close(buffers[name], b, rtol=1e-5, atol=1e-6, msg=name)


def _status_bytes(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/self/status")


def _measured_peak(model: GaitModel, poses: torch.Tensor, amp: torch.dtype | None = None) -> int:
    """Bytes the process's resident set grew by at its peak during one training step (Adam) of ``model``, its
    forward under autocast to ``amp`` (None: float32)."""
    x = model.input_features(poses)
    optimizer = torch.optim.Adam(model.parameters())
    ctypes.CDLL("libc.so.6").malloc_trim(0)  # freed memory still resident would hide the step's own
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak resident set (VmHWM) to the current one
    before = _status_bytes("VmRSS:")
    with torch.autocast("cpu", dtype=amp or torch.bfloat16, enabled=amp is not None):
        loss = _loss(model, x)
    loss.backward()
    optimizer.step()
    return _status_bytes("VmHWM:") - before


@pytest.mark.system
@pytest.mark.parametrize("family", FAMILIES)
def test_the_estimate_of_each_family_is_near_its_measured_peak(family: str):
    """The estimate without its fixed overhead (batch copies, allocator) against one measured step at each level,
    and plain under bf16 autocast (measured on the CPU: 0.59-1.26x at these sizes, the same spread as
    benchmarks/memory.py)."""
    build, counts = FAMILIES[family]
    poses = _poses(16, 30)
    for level in ("off", *(level for level, n in counts.items() if n)):
        torch.manual_seed(0)
        model = build().train()
        est = estimate(model, 16, 30)
        if level != "off":
            recompute_activations(model, level)
        central = (est.model_state + _kept(est, level)) * TRANSIENT_FACTOR
        measured = _measured_peak(model, poses)
        assert 0.4 < central / measured < 2.5, (family, level, central, measured)
    torch.manual_seed(0)
    model = build().train()
    half = estimate(model, 16, 30, torch.bfloat16)  # bf16 autocast (trainer.amp): most activations kept in bf16
    central = (half.model_state + half.activations) * TRANSIENT_FACTOR
    measured = _measured_peak(model, poses, torch.bfloat16)
    assert 0.4 < central / measured < 2.5, (family, "bf16", central, measured)
    assert 0.45 * est.activations < half.activations < 0.7 * est.activations
    assert est.activations_recomputed < est.activations
    if counts["partial"]:
        assert est.activations_recomputed < est.activations_partial < est.activations
    else:
        assert est.activations_partial == est.activations


def _kept(est: MemoryEstimate, level: str) -> int:
    return {"off": est.activations, "partial": est.activations_partial, "full": est.activations_recomputed}[level]
