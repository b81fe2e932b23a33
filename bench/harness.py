"""Bench helpers: count AWS requests by operation (botocore event hook) and report peak memory."""
from __future__ import annotations

import resource
import threading
import tracemalloc
from collections import Counter
from contextlib import contextmanager
from typing import Iterator

import botocore.session

_counts: Counter = Counter()
_lock = threading.Lock()
_installed = False


def _count(event_name: str, **_: object) -> None:
    # event name: before-call.<service>.<Operation>
    _, service, operation = event_name.split(".", 2)
    with _lock:
        _counts[f"{service}.{operation}"] += 1


def install_request_counter() -> None:
    """Count every API call made by any botocore session created from now on (boto3 and PynamoDB)."""
    global _installed
    if _installed:
        return
    original = botocore.session.Session._register_builtin_handlers

    def register(self, events):
        original(self, events)
        events.register("before-call", _count)

    botocore.session.Session._register_builtin_handlers = register
    _installed = True


@contextmanager
def counting() -> Iterator[Counter]:
    """Yields a Counter that, on exit, holds the requests made inside the block."""
    with _lock:
        before = Counter(_counts)
    result: Counter = Counter()
    try:
        yield result
    finally:
        with _lock:
            result.update(_counts - before)


@contextmanager
def peak_memory() -> Iterator[dict]:
    """Peak Python heap inside the block (tracemalloc) and the process's max RSS so far."""
    stats: dict = {}
    tracemalloc.start()
    try:
        yield stats
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        stats["peak_heap_mb"] = peak / 2**20
        stats["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(rows: list[tuple[str, str, str]]) -> str:
    widths = [max(len(str(row[i])) for row in rows) for i in range(3)]
    return "\n".join("  ".join(str(cell).ljust(widths[i]) for i, cell in enumerate(row)) for row in rows)
