"""Emulator Query latency for a 50-item partition as the table grows (goal: flat)."""
from __future__ import annotations

import statistics
import time

from infra.local.stack import LocalStack

EMULATOR_BEFORE_AFTER = True  # `make bench` prints this bench on moto's connection-per-request server and on ours

PARTITION = 50
SIZES = (1_000, 10_000, 100_000)
TABLE = "bench-query"


def _fill(client, upto: int, start: int) -> None:
    for offset in range(start, upto, 25):
        batch = [{"PutRequest": {"Item": {"pk": {"S": "hot" if i < PARTITION else f"p{i % 2000}"},
                                          "sk": {"S": f"{i:07d}"}, "g": {"S": "hot" if i < PARTITION else f"g{i % 997}"}}}}
                 for i in range(offset, min(offset + 25, upto))]
        client.batch_write_item(RequestItems={TABLE: batch})


def _latency(client, **query) -> float:
    samples = []
    for _ in range(20):
        started = time.perf_counter()
        items = client.query(TableName=TABLE, ExpressionAttributeValues={":v": {"S": "hot"}}, **query)["Items"]
        samples.append(time.perf_counter() - started)
        assert len(items) == PARTITION
    return statistics.median(samples)


def run() -> list[tuple[str, str, str]]:
    stack = LocalStack().start()
    try:
        client = stack.aws("dynamodb")
        client.create_table(
            TableName=TABLE, BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("pk", "sk", "g")],
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
            GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                     "Projection": {"ProjectionType": "ALL"}}],
        )
        rows, filled = [], 0
        for size in SIZES:
            _fill(client, size, filled)
            filled = size
            base = _latency(client, KeyConditionExpression="pk = :v")
            index = _latency(client, IndexName="by_g", KeyConditionExpression="g = :v")
            rows.append((f"emulator Query, {PARTITION}-item partition, {size:,} items",
                         f"table {base * 1000:.1f} ms / GSI {index * 1000:.1f} ms", "goal: flat"))
        return rows
    finally:
        stack.stop()
