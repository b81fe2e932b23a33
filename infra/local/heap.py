"""Keep Python's cyclic garbage collector off the emulator's data.

moto holds every item, object and message of the embedded AWS as Python objects in this process,
millions of them with real amounts of data, and the collector's full passes walk all of them:
at 100,000 images a single pass costs seconds, charged to whichever request or Lambda step
happens to allocate at that moment (on AWS a Lambda's heap holds only its own work). So a
background thread moves what has survived so far into the permanent generation every
`interval` seconds (`gc.freeze`, which is O(1)); the collector then only looks at objects newer
than that. Reference counting still frees frozen objects that are dropped; only reference cycles
among frozen objects wait for `release`, which `LocalStack.reset` and `stop` call.
"""
from __future__ import annotations

import gc
import threading

_lock = threading.Lock()  # a release is never interleaved with a freeze


class HeapFreezer:
    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
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

    @staticmethod
    def release() -> None:
        """Hand every frozen object back to the collector and collect (after a reset, cycles of
        the forgotten state are garbage)."""
        with _lock:
            gc.unfreeze()
            gc.collect()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
        self.release()
