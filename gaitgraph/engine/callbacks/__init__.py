"""Training callbacks: everything optional in a run is one of these, called by the Trainer's loop."""

from gaitgraph.engine.callbacks.averaging import Averaging
from gaitgraph.engine.callbacks.base import Callback
from gaitgraph.engine.callbacks.checkpointing import Checkpointing
from gaitgraph.engine.callbacks.profiling import Profiling
from gaitgraph.engine.callbacks.reporting import MetricLogging, Progress
from gaitgraph.engine.callbacks.selection import Selection

__all__ = ["Averaging", "Callback", "Checkpointing", "MetricLogging", "Profiling", "Progress", "Selection"]
