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
    # When the heap is released (a stack stop)
    HeapFreezer().release()
    # Then the cycle is collected
    assert alive() is None


def _frozen_cycle() -> weakref.ref:
    first, second = Node(), Node()
    first.other, second.other = second, first
    alive = weakref.ref(first)
    gc.freeze()
    return alive


def test_a_reset_releases_only_once_the_process_has_grown_beyond_the_slack():
    # Given a freezer that last released at the current size, and a frozen cycle that was dropped
    freezer = HeapFreezer(slack=64 * 2**20)
    alive = _frozen_cycle()
    # When a reset asks while the process is still within its slack
    # Then nothing is collected (a full pass costs ~0.5 s over a test process's heap)
    assert freezer.release_if_grown() is False
    assert alive() is not None
    # When the process has grown beyond the slack
    ballast = bytearray(96 * 2**20)
    ballast[:: 4096] = b"x" * len(ballast[:: 4096])  # touched, so resident
    # Then the reset releases, and the cycle is collected
    assert freezer.release_if_grown() is True
    assert alive() is None
    del ballast
    gc.unfreeze()
