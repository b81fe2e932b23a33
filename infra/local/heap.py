"""Keep Python's cyclic garbage collector off the emulator's data.

moto holds every item, object and message of the embedded AWS as Python objects in this process,
millions of them with real amounts of data, and the collector's full passes walk all of them:
at 100,000 images a single pass costs seconds, charged to whichever request or Lambda step
happens to allocate at that moment (on AWS a Lambda's heap holds only its own work). So a
background thread moves what has survived so far into the permanent generation every
`interval` seconds (`gc.freeze`, which is O(1)); the collector then only looks at objects newer
than that. Reference counting still frees frozen objects that are dropped; only reference cycles
among frozen objects wait for `release`, which `stop` calls, and `LocalStack.reset` once the
process has grown by `slack` bytes since the last one: a full pass over a heap of imported
libraries costs ~0.5 s even with nothing to free, and a reset leaves little cyclic garbage.
"""
from __future__ import annotations

import gc
import os
import threading

_lock = threading.Lock()  # a release is never interleaved with a freeze


def resident_bytes() -> int:
    """This process's resident set size (Linux; 0 where /proc is absent, which makes every
    `release_if_grown` a no-op until `stop`)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class HeapFreezer:
    def __init__(self, interval: float = 1.0, slack: int = 512 * 2**20) -> None:
        self.interval = interval
        self.slack = slack
        self._released_at = resident_bytes()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HeapFreezer":
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="heap-freezer", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with _lock:
                gc.freeze()

    def release(self) -> None:
        """Hand every frozen object back to the collector and collect (after a reset, cycles of
        the forgotten state are garbage)."""
        with _lock:
            gc.unfreeze()
            gc.collect()
        self._released_at = resident_bytes()

    def release_if_grown(self) -> bool:
        """`release`, if the process grew by more than `slack` since the last one."""
        if resident_bytes() - self._released_at <= self.slack:
            return False
        self.release()
        return True

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.release()
