"""What the registry learns from S3: an object of a bucket was created or removed (parsed at the edge)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ObjectEvent:
    bucket: str
    key: str
    event_name: str
    event_time: str
    sequencer: str
    size: int | None
    etag: str | None
    version_id: str | None

    @property
    def created(self) -> bool:
        return self.event_name.startswith("ObjectCreated")

    @property
    def removed(self) -> bool:
        return self.event_name.startswith("ObjectRemoved")
