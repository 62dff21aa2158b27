"""Byte-identical sequences under different subject ids, found while the raw cache is built.

A walk copied into a second subject's folder (a packing mistake, a renamed copy) makes the network learn to tell a
sequence apart from itself, and, across the split, puts a test walk into training. Each sequence's frames are
hashed once as they stream into the raw cache (BLAKE2b, 16 bytes each: well under a second for CASIA-B's 13,640
sequences); the clashes are named in one warning.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator

from gaitgraph.data.poseset import PoseSet
from gaitgraph.errors import readable

log = logging.getLogger(__name__)

#: Clashes named in the warning (the count covers all).
SHOWN = 5


def watch_duplicates(chunks: Iterable[PoseSet], label: str) -> Iterator[PoseSet]:
    """Yield ``chunks`` unchanged; after the last, warn once about sequences whose frames are byte-identical to
    a sequence of another subject, naming both subjects and sources."""
    first: dict[bytes, tuple[int, str]] = {}
    clashes: list[str] = []
    for poses in chunks:
        subjects = poses.meta["subject"].to_numpy()
        sources = poses.meta["source"].to_numpy()
        for i in range(len(poses)):
            frames = poses.sequence(i)
            key = hashlib.blake2b(frames.tobytes(), digest_size=16, salt=frames.shape[1].to_bytes(2, "big")).digest()
            subject, source = first.setdefault(key, (int(subjects[i]), str(sources[i])))
            if subject != int(subjects[i]):
                clashes.append(f"subject {subject} ({source}) = subject {int(subjects[i])} ({sources[i]})")
        yield poses
    if clashes:
        more = f" and {len(clashes) - SHOWN} more" if len(clashes) > SHOWN else ""
        log.warning(
            "%s: %d sequences are byte-identical to a sequence of another subject (a copy under a second id "
            "trains on one walk as two people, and may put a test walk into training): %s%s",
            label,
            len(clashes),
            readable("; ".join(clashes[:SHOWN])),
            more,
        )
