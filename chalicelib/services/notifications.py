"""S3 event notifications as S3 delivers them through SQS.

One SQS message carries one notification: either `s3:TestEvent` (sent when notifications are
configured, to be ignored) or `{"Records": [...]}` with one or more records. Keys arrive
URL-encoded with spaces as `+`; `sequencer` orders events of one key.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import unquote_plus

from chalicelib.errors import BadRequestError

TEST_EVENT = "s3:TestEvent"


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


def parse(body: str) -> list[ObjectEvent]:
    """The object events in one SQS message body; [] for a test event. Raises on a malformed body."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadRequestError(f"notification is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadRequestError("notification is not a JSON object")
    if document.get("Event") == TEST_EVENT:
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise BadRequestError("notification has no Records list")
    events = []
    for record in records:
        try:
            s3 = record["s3"]
            obj = s3["object"]
            events.append(
                ObjectEvent(
                    bucket=s3["bucket"]["name"],
                    key=unquote_plus(obj["key"]),
                    event_name=record["eventName"],
                    event_time=record.get("eventTime", ""),
                    sequencer=obj.get("sequencer", ""),
                    size=obj.get("size"),
                    etag=obj.get("eTag"),
                    version_id=obj.get("versionId"),
                )
            )
        except (KeyError, TypeError) as exc:
            raise BadRequestError(f"malformed S3 record: missing {exc}") from exc
    return events
