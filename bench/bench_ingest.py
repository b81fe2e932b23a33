"""The ingest handler end to end on the embedded stack — S3 notification → GetObject → facts,
hashes, thumbnail → DynamoDB — on a mix of real-size JPEGs and PNGs, as a ratio to the floor
(SHA-256 + header read + draft decode + thumbnail) measured in the same run. Goal ≥ 0.7×."""
from __future__ import annotations

import json
import statistics
import time

from bench.bench_imaging import _floor, _mix
from infra.local.stack import LocalStack

ROUNDS = 3
BATCH = 10


def _notifications(stack) -> list[str]:
    sqs = stack._client("sqs")
    url = stack.physical["IngestQueue"]["QueueUrl"]
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return [body for body in bodies if "Records" in json.loads(body)]
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def _deliver(stack, bodies: list[str]) -> None:
    for start in range(0, len(bodies), BATCH):
        records = [{"messageId": str(start + i), "receiptHandle": "r", "body": body, "attributes": {},
                    "messageAttributes": {}, "md5OfBody": "", "eventSource": "aws:sqs",
                    "eventSourceARN": stack.physical["IngestQueue"]["Arn"], "awsRegion": stack.region}
                   for i, body in enumerate(bodies[start : start + BATCH])]
        answer = stack.emulator.lambdas.call("ingest", {"Records": records})
        assert answer == {"batchItemFailures": []}, answer


def run() -> list[tuple[str, str, str]]:
    images = _mix()
    stack = LocalStack(retry_delay=0).start()
    try:
        s3 = stack._client("s3")
        bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
        handler, floor = [], []
        for round_ in range(ROUNDS + 1):
            for index, (_, data) in enumerate(images):
                s3.put_object(Bucket=bucket, Key=f"bench/{index:02d}.{'png' if data[:4] == b'\x89PNG' else 'jpg'}",
                              Body=data)
            bodies = _notifications(stack)
            started = time.perf_counter()
            _deliver(stack, bodies)
            elapsed = time.perf_counter() - started
            started = time.perf_counter()
            for _, data in images:
                _floor(data)
            floor_elapsed = time.perf_counter() - started
            if round_:  # the first round warms imports and connections
                handler.append(len(images) / elapsed)
                floor.append(len(images) / floor_elapsed)
        from chalicelib.store.images import ImageRepository

        assert all(entry.status == "ready" for entry in ImageRepository().catalog("bench/"))
        handler_rate, floor_rate = statistics.median(handler), statistics.median(floor)
        return [
            (f"ingest handler, {len(images)}-image mix, batches of {BATCH}", f"{handler_rate:.1f} images/s", ""),
            ("floor on the same mix (one thread)", f"{floor_rate:.1f} images/s", ""),
            ("ingest handler / floor", f"{handler_rate / floor_rate:.2f}x", "goal >= 0.7x"),
        ]
    finally:
        stack.stop()
