"""Registering 10,000 already-uploaded images through the API's service and the `index` state
machine: DynamoDB write requests (goal ≤ 1.1 × ⌈items/25⌉), S3 list requests (goal ≤ ⌈objects/1000⌉),
no Scan. Requests are counted, so the emulator's speed does not change the figures."""
from __future__ import annotations

import os
import sys
import math
import time


from bench.harness import counting, tiles, upload_existing
from infra.local.stack import LocalStack

IMAGES = int(os.environ.get("BENCH_REGISTER_IMAGES", "10000"))
WRITE_OPERATIONS = ("BatchWriteItem", "PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems")


def run() -> list[tuple[str, str, str]]:
    stack = LocalStack(retry_delay=0).start()
    try:
        made = tiles(97)
        upload_existing(stack, ((f"bench/{n // 1000:02d}/{n:05d}.jpg", made[n % len(made)]) for n in range(IMAGES)))
        print(f"  {IMAGES:,} objects uploaded", file=sys.stderr, flush=True)

        from chalicelib.services.container import services
        from chalicelib.services.identity import Identity
        from chalicelib.store.operations import OperationRepository

        actor = Identity(sub="bench", email=None, groups=("admin",), is_admin=True)  # 10,000 at once: an admin
        with counting() as requests:
            started = time.perf_counter()
            registration = services().indexing.register(actor, ["bench/"])
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
