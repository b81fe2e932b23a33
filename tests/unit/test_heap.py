"""The embedded stack's heap freezer: survivors leave the collector's view, and come back on release."""
from __future__ import annotations

import gc
import time
import weakref

from infra.local.heap import HeapFreezer


class Node:
    def __init__(self) -> None:
        self.other: "Node | None" = None


def test_freezer_freezes_survivors_until_stopped():
    freezer = HeapFreezer(interval=0.01).start()
    survivors = [Node() for _ in range(1000)]
    deadline = time.monotonic() + 5
    while gc.get_freeze_count() < len(survivors) and time.monotonic() < deadline:
        time.sleep(0.01)
    thread = freezer._thread
    assert gc.get_freeze_count() >= len(survivors)
    freezer.stop()
    assert thread is not None and not thread.is_alive()


def test_release_collects_cycles_that_were_frozen():
    # Given a reference cycle frozen while alive, then dropped
    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    gc.freeze()
    del first, second
    gc.collect()
    assert alive() is not None  # frozen: the collector does not see it
    # When the heap is released (a stack reset or stop)
    HeapFreezer.release()
    # Then the cycle is collected
    assert alive() is None
