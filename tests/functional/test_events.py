"""S3 → SQS → pump → Chalice `ingest` handler, with partial batch failures and the DLQ."""
from __future__ import annotations

import json
from urllib.parse import unquote_plus

from infra.local.pump import EventPump


def recording_pump(stack, seen: list) -> EventPump:
    """The stack's pump wiring, remembering each event the handler got and what it answered."""
    queue = stack.physical["IngestQueue"]

    def handler(event):
        seen.append((event, None))
        answer = stack.emulator.lambdas.call("ingest", event)  # raises when every record failed
        seen[-1] = (event, answer)
        return answer

    return EventPump(stack.aws("sqs"), queue["QueueUrl"], queue["Arn"], handler, stack.region, retry_delay=0)


def test_object_created_reaches_the_handler_as_lambda_delivers_it(stack):
    seen: list = []
    pump = recording_pump(stack, seen)
    pump.drain()  # the s3:TestEvent sent when notifications were configured
    seen.clear()
    s3 = stack.aws("s3")
    # When
    s3.put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="holiday photos/café 1.jpg", Body=b"x")
    pump.drain()
    # Then
    (event, answer), = seen
    record, = event["Records"]
    assert record["eventSource"] == "aws:sqs" and record["eventSourceARN"] == stack.physical["IngestQueue"]["Arn"]
    s3_record, = json.loads(record["body"])["Records"]
    assert s3_record["eventName"].startswith("ObjectCreated")
    encoded = s3_record["s3"]["object"]["key"]
    assert " " not in encoded and "é" not in encoded  # S3 delivers keys URL-encoded
    assert unquote_plus(encoded) == "holiday photos/café 1.jpg"
    assert answer == {"batchItemFailures": []}


def test_poison_message_goes_to_the_dlq_and_the_rest_of_the_batch_is_processed(stack):
    seen: list = []
    pump = recording_pump(stack, seen)
    pump.drain()
    sqs = stack.aws("sqs")
    queue_url = stack.physical["IngestQueue"]["QueueUrl"]
    good = json.dumps({"Records": [{"eventName": "ObjectCreated:Put", "eventTime": "t", "s3": {
        "bucket": {"name": "b"}, "object": {"key": "a.jpg", "size": 1, "sequencer": "01"}}}]})
    sqs.send_message_batch(QueueUrl=queue_url, Entries=[
        {"Id": "good", "MessageBody": good},
        {"Id": "poison", "MessageBody": "this is not a notification"},
    ])
    # When the pump runs until nothing is left
    for _ in range(10):
        pump.drain()
    # Then the good message was delivered once and deleted; the poison one was retried, then dead-lettered
    bodies = [[r["body"] for r in event["Records"]] for event, _ in seen]
    assert sum(batch.count(good) for batch in bodies) == 1
    assert sum(batch.count("this is not a notification") for batch in bodies) == 5
    # alone in its batch the poison message makes the handler raise (whole batch retried);
    # next to the good one it is reported as the one failed item
    mixed = [answer for event, answer in seen if len(event["Records"]) == 2]
    assert [len(answer["batchItemFailures"]) for answer in mixed] == [1]
    dlq_url = stack.physical["IngestDeadLetterQueue"]["QueueUrl"]
    dead = sqs.receive_message(QueueUrl=dlq_url, MaxNumberOfMessages=10)["Messages"]
    assert [m["Body"] for m in dead] == ["this is not a notification"]
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"


def test_handler_crash_returns_the_whole_batch(stack):
    queue = stack.physical["IngestQueue"]
    calls = []

    def crashing(event):
        calls.append(len(event["Records"]))
        if len(calls) == 1:
            raise RuntimeError("cold start failed")
        return {"batchItemFailures": []}

    pump = EventPump(stack.aws("sqs"), queue["QueueUrl"], queue["Arn"], crashing, stack.region, retry_delay=0)
    pump.drain()
    calls.clear()
    stack.aws("sqs").send_message(QueueUrl=queue["QueueUrl"], MessageBody="{}")
    pump.drain()
    assert calls == [1, 1]
