"""Rarer cycle collections for the length of a run.

A run keeps whole parsed files (and their metadata) alive, and Python's cycle collector
scans that whole heap again and again as LibCST allocates nodes: a fifth of the time of
a run at the default thresholds, and more the bigger the file (each collection costs the
size of the heap, so their total grows faster than the file). LibCST trees hold no
cycles (reference counting frees them), so collections can be far rarer; mypy runs with
the same thresholds for the same reason.
"""

from __future__ import annotations

import contextlib
import gc

RUN_GC_THRESHOLDS = (200_000, 30, 30)


@contextlib.contextmanager
def rare_collections():
    before = gc.get_threshold()
    gc.set_threshold(*RUN_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def worker_start() -> None:
    """Initializer of worker processes: the same thresholds for their whole life."""
    gc.set_threshold(*RUN_GC_THRESHOLDS)
