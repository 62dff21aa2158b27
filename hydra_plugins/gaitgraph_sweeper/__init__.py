"""Hydra discovers sweepers only in the ``hydra_plugins`` namespace: this is gaitgraph's Optuna sweeper there.

Hydra imports every plugin module at every start of every command, so this one stays light: the sweeper itself
(:class:`gaitgraph.sweep.sweeper.OptunaSweeper`, which imports optuna: about 2 s) is imported only when a sweep
builds it.
"""

from __future__ import annotations

from typing import Any

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class GaitGraphOptunaSweeper(Sweeper):
    """:class:`gaitgraph.sweep.sweeper.OptunaSweeper`, registered where Hydra looks for plugins."""

    def __init__(self, **settings: Any) -> None:
        from gaitgraph.sweep.sweeper import OptunaSweeper

        self.sweeper = OptunaSweeper(**settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: list[str]) -> Any:
        return self.sweeper.sweep(arguments)


__all__ = ["GaitGraphOptunaSweeper"]
