"""The sweep tools: Optuna's sweeper for Hydra and what runs beside a sweep.

- :mod:`~gaitgraph.sweep.sweeper`: the sweeper (studies, their names, the trial loop);
- :mod:`~gaitgraph.sweep.study`: where a sweep's study lives (its storage, the sweep folder's record), without Optuna;
- :mod:`~gaitgraph.sweep.pruning`: the training callback that reports to a trial and stops a pruned one;
- :mod:`~gaitgraph.sweep.liveness`: trials of a killed sweep process are failed when the study is next opened;
- :mod:`~gaitgraph.sweep.compare` and :mod:`~gaitgraph.sweep.plots`: ranked tables and plots of a sweep's runs;
- :mod:`~gaitgraph.sweep.seed_check`: is a sweep's spread larger than seed-to-seed noise;
- :mod:`~gaitgraph.sweep.dashboard`: the study in optuna-dashboard.

They sit at the entry-point layer (docs/design.md#layers). Importing this package imports none of them (the
sweeper pulls in optuna, about 2 s, only when Hydra builds it).
"""
