"""Preflight (gaitgraph/engine/preflight.py): a wrong key or value anywhere in the config is one ConfigError that
names it, raised by train() before any data is read; an unchanged config is checked once. That every recipe passes
and every model option's full-size network builds on the meta device is in tests/test_config.py, beside the
compositions of the same options."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import open_dict

from gaitgraph.engine.preflight import preflight
from gaitgraph.errors import ConfigError
from gaitgraph.train import train

from .conftest import compose_train

#: (overrides, the start of the message: the key, then its value)
BAD = [
    (["+model.foo=1"], "model.foo=1: expected an argument of gaitgraph.models.resgcn.ResGCN"),
    (["model.temporal_kernel=abc"], "model='gaitgraph.models.resgcn.ResGCN': expected settings that build"),
    (["model.features=bogus"], "model.features='bogus'"),
    (["model.attention=nonsense"], "model.attention='nonsense'"),
    (["model=gpgait", "model.in_channels=[2]"], "model.share_num=3"),
    (["keypoints.flip_idx=[0,1]"], "keypoints.flip_idx=[0, 1]"),
    (["+loss.foo=2"], "loss.foo=2: expected an argument of gaitgraph.models.losses.SupConLoss"),
    (["loss.temperature=abc"], "loss='gaitgraph.models.losses.SupConLoss': expected settings that build"),
    (["+augmentation.transforms.flip_lr.q=1"], "augmentation.transforms.flip_lr.q=1"),
    (["augmentation.transforms.joint_noise.amplitude=abc"], "augmentation='gaitgraph.data.transforms.Compose'"),
    (["+optimizer.scheduler.foo=1"], "optimizer.scheduler.foo=1: expected an argument of torch.optim"),
    (["logger=csv", "+logger.csv.foo=1"], "logger.csv.foo=1: expected an argument of gaitgraph.loggers.csv"),
    (["dataset.preprocess.normalize=zscore"], "dataset.preprocess.normalize='zscore': expected one of none"),
    (["dataset.reader.short_policy=keep"], "dataset.reader.short_policy='keep'"),
    (["dataset.reader.min_frames=0"], "dataset.reader.min_frames=0"),
    (["+dataset.reader.foo=1"], "dataset.reader.foo=1: expected an argument of gaitgraph.data.psymo.PsyMoReader"),
    (["dataset=oumvlp", "keypoints=openpose", "dataset.reader.source=bogus"], "dataset.reader.source='bogus'"),
    (["+dataset.protocols.psymo10.foo=1"], "dataset.protocols.psymo10="),
    (["~dataset.protocols.psymo10.gallery"], "dataset.protocols.psymo10.gallery=None: expected a value"),
    (["dataset=grew", "dataset.protocols.grew.ranks=[5]"], "dataset.protocols.grew.ranks=[5]"),
    (["dataset=grew", "~dataset.protocols.grew.val.probes"], "dataset.protocols.grew.val=['gallery', 'missing_"),
    (["dataset.eval_sequence_length=0"], "dataset.eval_sequence_length=0"),
    (["metric_protocol=casia_b"], "metric_protocol='casia_b': expected null or a protocol of the dataset"),
    (["trainer.host_malloc=fast"], "trainer.host_malloc='fast': expected 'auto'"),
    (["trainer.host_malloc={mmap_threshold_mb:abc}"], "trainer.host_malloc.mmap_threshold_mb='abc': expected null"),
    (["trainer.host_malloc={huge_pages:maybe}"], "trainer.host_malloc.huge_pages='maybe': expected true"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_a_wrong_key_or_value_stops_train_before_any_data_is_read(overrides, message, tmp_path: Path):
    cfg = compose_train([*overrides, f"paths.cache_dir={tmp_path / 'cache'}", f"paths.data_dir={tmp_path / 'none'}"])
    with open_dict(cfg):
        cfg.paths.output_dir = str(tmp_path / "run")
    with pytest.raises(ConfigError) as caught:
        train(cfg)
    assert str(caught.value).startswith(message), str(caught.value)
    assert len(str(caught.value).splitlines()) <= 2, "one paragraph: the message and at most a hint"
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists(), "data was read or a run written"


def test_the_same_config_is_built_once_and_a_changed_one_again(monkeypatch: pytest.MonkeyPatch):
    """A single run is checked by its Hydra callback and again by train(): the second check of equal content builds
    nothing; a config that differs anywhere (Hydra's own node aside) is checked in full, and a failed one again."""
    from gaitgraph.engine import preflight as module

    real, built = module._build_all, []
    monkeypatch.setattr(module, "_build_all", lambda cfg: (built.append(cfg), real(cfg)))
    monkeypatch.setattr(module, "_passed", None)
    preflight(compose_train(["debug=fdr"], return_hydra_config=True))
    preflight(compose_train(["debug=fdr"]))  # the task's config: the same content, without Hydra's node
    assert len(built) == 1
    bad = compose_train(["debug=fdr", "dataset.preprocess.normalize=zscore"])
    for attempt in (2, 3):  # a failed check is not remembered as passed
        with pytest.raises(ConfigError, match="dataset.preprocess.normalize"):
            preflight(bad)
        assert len(built) == attempt
