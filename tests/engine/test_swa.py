"""Stochastic weight averaging: start epoch, kept lr, plain mean of epoch weights, BN statistics at the end."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gaitgraph.engine.schedules import cosine
from gaitgraph.engine.swa import WeightAveraging


def _net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))


def test_start_epoch_follows_the_reference():
    swa = WeightAveraging(_net(), epochs=750, start_fraction=0.8)
    assert swa.start_epoch == 600 and not swa.active(599) and swa.active(600)
    with pytest.raises(ValueError, match="start_fraction"):
        WeightAveraging(_net(), epochs=10, start_fraction=1.0)


def test_averages_epoch_weights_keeps_lr_and_recomputes_bn():
    net = _net()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.3)
    swa = WeightAveraging(net, epochs=10, start_fraction=0.5, lr=None, anneal_epochs=2)
    swa.begin(optimizer)
    snapshots = []
    for epoch in range(3):
        with torch.no_grad():
            net[0].weight.fill_(float(epoch))
        snapshots.append(net[0].weight.detach().clone())
        swa.end_epoch(net)
        assert optimizer.param_groups[0]["lr"] == pytest.approx(0.3)  # swa lr = current lr
    data = [torch.randn(8, 3) * 5 + 2 for _ in range(4)]
    averaged = swa.finalize(data)
    assert torch.allclose(averaged[0].weight, torch.stack(snapshots).mean(0))
    with torch.no_grad():
        hidden = averaged[0](torch.cat(data))
    assert torch.allclose(averaged[1].running_mean, hidden.mean(0), atol=1e-5)


def test_state_round_trip_restores_schedule():
    net = _net()
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    swa = WeightAveraging(net, epochs=10, start_fraction=0.0, lr=0.1, anneal_epochs=4)
    swa.begin(optimizer)
    swa.end_epoch(net)
    swa.end_epoch(net)
    state, opt_state, lr = swa.state_dict(), optimizer.state_dict(), optimizer.param_groups[0]["lr"]

    net2 = _net()
    optimizer2 = torch.optim.SGD(net2.parameters(), lr=1.0)
    swa2 = WeightAveraging(net2, epochs=10, start_fraction=0.0, lr=0.1, anneal_epochs=4)
    swa2.load_state_dict(state, optimizer2)
    optimizer2.load_state_dict(opt_state)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(lr)
    swa.end_epoch(net)
    swa2.end_epoch(net2)
    assert optimizer2.param_groups[0]["lr"] == pytest.approx(optimizer.param_groups[0]["lr"])
    assert int(swa2.averaged.n_averaged) == 3


def test_cosine_decays_to_zero():
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    schedule = cosine(optimizer, total_steps=10)
    for _ in range(10):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
