"""S3 notifications as S3 writes them: moto's lack the object's `sequencer` (and `versionId`).

Real S3 puts a hexadecimal `sequencer` on every PUT and DELETE notification, increasing per key,
and the ingest handler relies on it to drop stale events. The emulator's notifications get one
here — strictly increasing across the process — so event ordering behaves locally as on AWS.
"""
from __future__ import annotations

import threading
import time
from typing import Any

_lock = threading.Lock()
_last = 0
_installed = False


def next_sequencer() -> str:
    """Strictly increasing, even if the wall clock steps back; time-based so restarts keep order."""
    global _last
    with _lock:
        _last = max(time.time_ns(), _last + 1)
        return f"{_last:018X}"


def add_sequencers() -> None:
    """Wrap moto's notification builder once per process."""
    global _installed
    if _installed:
        return
    from moto.s3 import notifications

    build = notifications._get_s3_event

    def with_sequencer(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict:
        event = build(event_name, bucket, key, notification_id)
        sequencer = next_sequencer()
        for record in event["Records"]:
            obj = record["s3"]["object"]
            obj["sequencer"] = sequencer
            version = getattr(key, "version_id", None)
            if version and version != "null":
                obj["versionId"] = version
        return event

    notifications._get_s3_event = with_sequencer
    _installed = True
