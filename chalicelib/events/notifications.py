"""S3 event notifications as S3 delivers them through SQS.

One SQS message carries one notification: either `s3:TestEvent` (sent when notifications are
configured, to be ignored) or `{"Records": [...]}` with one or more records. Keys arrive
URL-encoded with spaces as `+`; `sequencer` orders events of one key.
"""
from __future__ import annotations

import json
from urllib.parse import unquote_plus

from aws_lambda_powertools import Logger

from chalicelib.errors import BadRequestError
from chalicelib.services.object_events import ObjectEvent

logger = Logger(child=True)
TEST_EVENT = "s3:TestEvent"


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


def read(messages: list[tuple[str, str]]) -> tuple[list[tuple[str, list[ObjectEvent]]], list[str]]:
    """SQS messages as (message id, its object events), and the ids of messages that are unreadable."""
    batch, unreadable = [], []
    for message_id, body in messages:
        try:
            batch.append((message_id, parse(body)))
        except BadRequestError as exc:
            logger.warning("unreadable notification", extra={"message_id": message_id, "error": exc.message})
            unreadable.append(message_id)
    return batch, unreadable
