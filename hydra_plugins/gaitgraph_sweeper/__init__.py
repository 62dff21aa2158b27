"""Hydra discovers sweepers only in the ``hydra_plugins`` namespace: this is gaitgraph's Optuna sweeper there."""

from gaitgraph.sweeps import OptunaSweeper


class GaitGraphOptunaSweeper(OptunaSweeper):
    """:class:`gaitgraph.sweeps.OptunaSweeper`, registered where Hydra looks for plugins."""


__all__ = ["GaitGraphOptunaSweeper"]
