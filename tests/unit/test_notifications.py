"""S3 notifications as SQS delivers them: test events, URL-encoded keys, several records."""
from __future__ import annotations

import json

import pytest

from chalicelib.errors import BadRequestError
from chalicelib.events.notifications import parse


def s3_record(key: str, event: str = "ObjectCreated:Put", sequencer: str = "0055AED6DCD90281E5", size: int = 10):
    return {
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2026-11-21T10:00:00.000Z", "eventName": event,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": "share", "arn": "arn:aws:s3:::share"},
               "object": {"key": key, "size": size, "eTag": "abc", "sequencer": sequencer}},
    }


def test_test_event_yields_nothing():
    body = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Time": "2026-11-21T10:00:00Z",
                       "Bucket": "share", "RequestId": "r", "HostId": "h"})
    assert parse(body) == []


def test_keys_are_url_decoded_and_every_record_is_kept():
    body = json.dumps({"Records": [
        s3_record("holiday+photos/caf%C3%A9+1.jpg"),
        s3_record("a%2Bb/x.png", event="ObjectRemoved:Delete", sequencer="0055AED6DCD90281E6"),
    ]})
    events = parse(body)
    assert [e.key for e in events] == ["holiday photos/café 1.jpg", "a+b/x.png"]
    assert [e.created for e in events] == [True, False]
    assert events[1].removed and events[1].sequencer == "0055AED6DCD90281E6"


@pytest.mark.parametrize("body", ["not json", "[]", json.dumps({"Records": [{"eventName": "x"}]}), json.dumps({})])
def test_malformed_bodies_are_rejected_with_a_reason(body):
    with pytest.raises(BadRequestError):
        parse(body)
