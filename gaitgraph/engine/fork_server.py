"""Imported by the fork server DDP ranks start from, and by nothing else (in ``distributed.PRELOAD``).

The server is a process of the run like the ranks: a scheduler's SIGTERM to every process of a job (SLURM at its
time limit) reaches it too, and if it died of it the parent would read every rank's exit as a failure and kill the
ranks while they save their interrupt checkpoint. So the server blocks SIGTERM; the server stops anyway when the
parent does. A rank inherits the mask from the fork and unblocks SIGTERM first thing (``distributed._spawned``):
a SIGTERM that comes while the rank starts waits until then instead of being lost. (The server already ignores
SIGINT, and restores Python's handler in each rank.)
"""

from __future__ import annotations

import signal

signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
