"""Bench helpers: count AWS requests by operation (botocore event hook) and report peak memory."""
from __future__ import annotations

import io
import json
import resource
import threading
import time
import tracemalloc
from collections import Counter
from contextlib import contextmanager
from typing import Callable, Iterable, Iterator

import botocore.session

_counts: Counter = Counter()
_lock = threading.Lock()
_installed = False


def _count(event_name: str, **_: object) -> None:
    # event name: before-call.<service>.<Operation>
    _, service, operation = event_name.split(".", 2)
    with _lock:
        _counts[f"{service}.{operation}"] += 1


_hooks: list[tuple[str, Callable]] = []


def on_botocore_event(event_name: str, handler: Callable) -> None:
    """Register `handler` for `event_name` on every botocore session created from now on (boto3 and
    PynamoDB build theirs lazily, so call this before the first client is made)."""
    global _installed
    _hooks.append((event_name, handler))
    if _installed:
        return
    original = botocore.session.Session._register_builtin_handlers

    def register(self, events):
        original(self, events)
        for name, hook in _hooks:
            events.register(name, hook)

    botocore.session.Session._register_builtin_handlers = register
    _installed = True


def install_request_counter() -> None:
    """Count every API call made by any botocore session created from now on (boto3 and PynamoDB)."""
    if any(hook is _count for _, hook in _hooks):
        return
    on_botocore_event("before-call", _count)


def tiles(count: int) -> list[bytes]:
    """`count` distinct small JPEGs (48×32) to upload many times over."""
    from PIL import Image

    made = []
    for n in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256)).save(buffer, "JPEG", quality=80)
        made.append(buffer.getvalue())
    return made


def upload_existing(stack, objects: Iterable[tuple[str, bytes]]) -> None:
    """Objects already in the share: uploaded while notifications are off, the queue purged after."""
    s3 = stack.aws("s3")
    bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
    notifications.pop("ResponseMetadata", None)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
    for key, body in objects:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
    stack.aws("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])


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


def requests_line(requests: Counter) -> str:
    """DynamoDB and S3 requests by operation, one line: `dynamodb: Query 3, …; s3: GetObject 2, …`."""
    by_service: dict[str, list[str]] = {}
    for name, count in sorted(requests.items()):
        service, operation = name.split(".", 1)
        by_service.setdefault(service, []).append(f"{operation} {count:,}")
    return "; ".join(f"{service}: {', '.join(ops)}" for service, ops in by_service.items()
                     if service in ("dynamodb", "s3"))


def step_times(recorder, steps: Iterable[str], suffix: str) -> str:
    """Each state machine step's Invoke time at the emulator's dispatcher (`recorder.of(function)`
    gives its calls): one figure for a single call, median, max and the Map's span for several."""
    import statistics

    parts = []
    for function in steps:
        calls = recorder.of(function)
        short = function.removesuffix(suffix)
        if not calls:
            continue
        if len(calls) == 1:
            parts.append(f"{short} {calls[0].seconds:.1f} s")
        else:
            span = max(c.started + c.seconds for c in calls) - min(c.started for c in calls)
            seconds = [c.seconds for c in calls]
            parts.append(f"{short} x{len(calls)} median {statistics.median(seconds):.1f} s "
                         f"(max {max(seconds):.1f}; Map span {span:.1f} s)")
    return "; ".join(parts)


class Api:
    """The Chalice test client (as the functional tests use it) with a bearer token and JSON bodies."""

    def __init__(self, client, token: str) -> None:
        self._client, self._token = client, token

    def call(self, method: str, path: str, body=None, status: int = 200):
        response = self._client.http.request(
            method, path, headers={"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"},
            body=json.dumps(body).encode() if body is not None else b"")
        answer = json.loads(response.body) if response.body else None
        if response.status_code != status:
            raise RuntimeError(f"{method} {path}: {response.status_code} {str(answer)[:500]}")
        return answer["data"]

    def wait(self, operation_id: str, timeout: float, say: Callable[[str], None], poll_seconds: float = 0.2) -> dict:
        """Poll an operation until it completes or fails, saying each change of its progress."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            operation = self.call("GET", f"/api/v1/operations/{operation_id}")
            if operation["status"] in ("completed", "failed"):
                return operation
            progress = (operation["status"], operation.get("done"), operation.get("total"))
            if progress != last:
                last = progress
                say(f"operation {operation['status']} {operation.get('done')}/{operation.get('total')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"operation {operation_id} did not finish: {operation}")
            time.sleep(poll_seconds)
