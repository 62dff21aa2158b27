"""Training batches: random and P x K plans, rank sharding, mid-epoch resume of the batch stream."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaitgraph.data.batches import WindowBatches, pk_plan, random_plan
from gaitgraph.engine.distributed import shard

from .conftest import toy_poses


def test_random_plan_is_one_pass():
    plan = random_plan(10, 4, False, np.random.default_rng(0))
    assert [len(b) for b in plan] == [4, 4, 2]
    assert sorted(np.concatenate(plan)) == list(range(10))
    assert [len(b) for b in random_plan(10, 4, True, np.random.default_rng(0))] == [4, 4]


def test_pk_batches_hold_p_subjects_times_k():
    labels = np.repeat(np.arange(6), [5, 5, 5, 2, 5, 5])  # subject 3 has fewer than K sequences
    plan = pk_plan(labels, p=3, k=4, n_batches=20, rng=np.random.default_rng(0))
    seen = []
    for batch in plan:
        subjects = labels[batch].reshape(3, 4)
        assert (subjects == subjects[:, :1]).all(), "each group of K is one subject"
        assert len(set(subjects[:, 0])) == 3, "P distinct subjects"
        for group, s in zip(batch.reshape(3, 4), subjects[:, 0]):
            if s != 3:
                assert len(set(group)) == 4, "without replacement when the subject has >= K sequences"
        seen.extend(subjects[:, 0])
    assert sorted(set(seen)) == list(range(6))
    counts = np.bincount(seen)
    assert counts.max() - counts.min() <= 3, f"subjects drawn evenly (passes over all), got {counts}"


def test_pk_rejects_more_subjects_than_exist():
    with pytest.raises(ValueError, match="trainer.pk.p"):
        pk_plan(np.arange(4), p=5, k=2, n_batches=1, rng=np.random.default_rng(0))


def test_every_rank_draws_the_same_global_batches():
    poses = toy_poses(8, (6, 3))
    ranks = [WindowBatches(poses, 16, 0, seed=7, sampler="pk", pk=(4, 4)) for _ in range(2)]
    for (xa, ya), (xb, yb) in zip(*ranks):
        assert len(ya) == 16
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        assert len(torch.unique(ya)) == 4


@pytest.mark.parametrize(("n", "world"), [(32, 2), (33, 2), (10, 3), (2, 4)])
def test_shards_partition_the_global_batch(n: int, world: int):
    parts = [shard(n, r, world) for r in range(world)]
    rows = np.concatenate([np.arange(n)[p] for p in parts])
    assert rows.tolist() == list(range(n))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


@pytest.mark.parametrize("sampler", ["random", "pk"])
def test_resume_mid_epoch_continues_the_same_stream(sampler: str):
    poses = toy_poses(8, (6,))
    kwargs = {"sampler": sampler, "pk": (2, 3)}
    reference = WindowBatches(poses, 16, 6, seed=3, **kwargs)
    straight = [x for _ in range(2) for x, _ in reference]

    first = WindowBatches(poses, 16, 6, seed=3, **kwargs)
    got = []
    for x, _ in first:
        got.append(x)
        if len(got) == 3:
            break
    state = first.state_dict()
    assert first.in_epoch and state["position"] == 3
    resumed = WindowBatches(poses, 16, 6, seed=999, **kwargs)  # seed is overwritten by the state
    resumed.load_state_dict(state)
    got += [x for _ in range(2) for x, _ in resumed][: len(straight) - 3]
    assert all(torch.equal(a, b) for a, b in zip(straight, got)) and len(got) == len(straight)
