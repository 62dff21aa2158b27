"""One composition per distinct overrides within a test module (or a process): composing conf/train.yaml costs
~0.2 CPU-s, and several tests of a module ask for the same config (``debug=fdr``, one option of a group)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from .conftest import compose_config


class Composed:
    """:func:`tests.conftest.compose_config` of conf/<name>.yaml, memoized on the overrides. The configs are shared,
    so read-only: a test that changes one works on a copy (``copy.deepcopy(cfg)``, then
    ``OmegaConf.set_readonly(copy, False)``)."""

    def __init__(self, name: str = "train", return_hydra_config: bool = False) -> None:
        self.name = name
        self.return_hydra_config = return_hydra_config
        self._configs: dict[tuple[str, ...], DictConfig] = {}

    def __call__(self, overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
        """The composed config of ``overrides`` (in this order), composed on first use."""
        key = tuple(overrides)
        if key not in self._configs:
            cfg = compose_config(self.name, list(key), return_hydra_config=self.return_hydra_config)
            OmegaConf.set_readonly(cfg, True)
            self._configs[key] = cfg
        return self._configs[key]
