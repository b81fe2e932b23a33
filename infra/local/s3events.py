"""S3 notifications as S3 writes them: moto's lack the object's `sequencer` (and `versionId`).

Real S3 puts a hexadecimal `sequencer` on every PUT and DELETE notification, increasing per key,
and the ingest handler relies on it to drop stale events. The emulator's notifications get one
here — strictly increasing across the process — so event ordering behaves locally as on AWS.
`infra/local/patches.py` installs `get_s3_event` over moto's notification builder.
"""
from __future__ import annotations

import inspect
import threading
import time
from typing import Any

from moto.s3 import notifications

# moto's own builder, taken before anything is patched.
MOTO_GET_S3_EVENT = inspect.getattr_static(notifications, "_get_s3_event")

_lock = threading.Lock()
_last = 0


def next_sequencer() -> str:
    """Strictly increasing, even if the wall clock steps back; time-based so restarts keep order."""
    global _last
    with _lock:
        _last = max(time.time_ns(), _last + 1)
        return f"{_last:018X}"


def get_s3_event(event_name: str, bucket: Any, key: Any, notification_id: str) -> dict:
    """moto's event, with the `sequencer` (and, for a versioned object, `versionId`) S3 adds."""
    event = MOTO_GET_S3_EVENT(event_name, bucket, key, notification_id)
    sequencer = next_sequencer()
    for record in event["Records"]:
        obj = record["s3"]["object"]
        obj["sequencer"] = sequencer
        version = getattr(key, "version_id", None)
        if version and version != "null":
            obj["versionId"] = version
    return event
