"""The test processes' memo of parsed config files (tests/yaml_memo.py) composes exactly what Hydra composes
without it, parses a shipped file once, and a composed config changed in place changes no later composition."""

from __future__ import annotations

import yaml
from omegaconf import OmegaConf, open_dict

from . import yaml_memo
from .conftest import compose_train

OVERRIDES = ["experiment=gaitgraph2_grew", "model=gpgait", "logger=[csv,tensorboard]"]


def test_the_memo_composes_what_hydra_composes_and_parses_each_file_once(monkeypatch):
    first = compose_train(OVERRIDES)
    memoized = OmegaConf.to_container(first, resolve=False)
    with open_dict(first):  # nested dicts and lists of files the memo holds
        first.model.clear()
        first.dataset.protocols = {}
        first.logger.csv.extra = [1]
    parses = []
    real_load = yaml.load
    monkeypatch.setattr(yaml, "load", lambda *a, **k: parses.append(1) or real_load(*a, **k))
    assert OmegaConf.to_container(compose_train(OVERRIDES), resolve=False) == memoized
    assert parses == []  # every file came from the memo
    monkeypatch.setattr(OmegaConf, "load", yaml_memo.UNMEMOIZED)
    assert OmegaConf.to_container(compose_train(OVERRIDES), resolve=False) == memoized
    assert len(parses) > 10
