"""Registering 10,000 already-uploaded images through the API's service and the `index` state
machine: DynamoDB write requests (goal ≤ 1.1 × ⌈items/25⌉), S3 list requests (goal ≤ ⌈objects/1000⌉),
no Scan. Requests are counted, so the emulator's speed does not change the figures."""
from __future__ import annotations

import io
import os
import sys
import math
import time

from PIL import Image

from bench.harness import counting
from infra.local.stack import LocalStack

IMAGES = int(os.environ.get("BENCH_REGISTER_IMAGES", "10000"))
WRITE_OPERATIONS = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")


def _tiles(count: int) -> list[bytes]:
    tiles = []
    for n in range(count):
        buffer = io.BytesIO()
        Image.new("RGB", (48, 32), ((n * 37) % 256, (n * 91) % 256, (n * 13) % 256)).save(buffer, "JPEG", quality=80)
        tiles.append(buffer.getvalue())
    return tiles


def run() -> list[tuple[str, str, str]]:
    stack = LocalStack(retry_delay=0).start()
    try:
        s3 = stack._client("s3")
        bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
        tiles = _tiles(97)
        # Already uploaded: objects that were there before notifications were configured.
        notifications = s3.get_bucket_notification_configuration(Bucket=bucket)
        notifications.pop("ResponseMetadata", None)
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={})
        for n in range(IMAGES):
            s3.put_object(Bucket=bucket, Key=f"bench/{n // 1000:02d}/{n:05d}.jpg", Body=tiles[n % len(tiles)])
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration=notifications)
        stack._client("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])
        print(f"  {IMAGES:,} objects uploaded", file=sys.stderr, flush=True)

        from chalicelib.services import container
        from chalicelib.services.identity import Identity
        from chalicelib.store.operations import OperationRepository

        actor = Identity(sub="bench", email=None, groups=(), is_admin=False)
        with counting() as requests:
            started = time.perf_counter()
            registration = container.indexing().register(actor, ["bench/"])
            operation = registration.operation
            assert operation is not None, "10,000 images must go to the background"
            while True:
                state = OperationRepository().get(operation.id)
                if state.status in ("completed", "failed"):
                    break
                print(f"  {state.status} {state.done}/{state.total}", file=sys.stderr, flush=True)
                time.sleep(0.5)
            elapsed = time.perf_counter() - started
        assert state.status == "completed", state.error
        assert state.result["total_registered"] == IMAGES, state.result

        dynamodb_writes = sum(requests[f"dynamodb.{name}"] for name in WRITE_OPERATIONS)
        write_budget = math.floor(1.1 * math.ceil(IMAGES / 25) + 1e-9)
        lists = requests["s3.ListObjectsV2"]
        scans = requests["dynamodb.Scan"]
        breakdown = ", ".join(f"{name} {requests[f'dynamodb.{name}']}" for name in WRITE_OPERATIONS
                              if requests[f"dynamodb.{name}"])
        return [
            (f"register {IMAGES:,}: wall time (embedded stack)", f"{elapsed:.1f} s ({IMAGES / elapsed:.0f} images/s)", ""),
            (f"register {IMAGES:,}: DynamoDB write requests", f"{dynamodb_writes} ({breakdown})",
             f"goal <= {write_budget}"),
            (f"register {IMAGES:,}: S3 list requests", str(lists), f"goal <= {math.ceil(IMAGES / 1000)}"),
            (f"register {IMAGES:,}: DynamoDB Scan requests", str(scans), "goal 0"),
        ]
    finally:
        stack.stop()
