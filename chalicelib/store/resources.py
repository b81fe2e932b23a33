"""Reachability probes for the stack's own resources (the self-check state machine)."""
from __future__ import annotations

from botocore.exceptions import ClientError

from chalicelib.errors import NotFoundError
from chalicelib.store.aws import client


def probe_table(name: str) -> dict:
    try:
        table = client("dynamodb").describe_table(TableName=name)["Table"]
    except ClientError as exc:
        raise NotFoundError(f"table {name}: {exc.response['Error']['Code']}") from exc
    return {"status": table["TableStatus"]}


def probe_bucket(name: str) -> dict:
    try:
        client("s3").head_bucket(Bucket=name)
    except ClientError as exc:
        raise NotFoundError(f"bucket {name}: {exc.response['Error']['Code']}") from exc
    return {"status": "ACTIVE"}


def probe_queue(name: str) -> dict:
    try:
        url = client("sqs").get_queue_url(QueueName=name)["QueueUrl"]
        attributes = client("sqs").get_queue_attributes(QueueUrl=url, AttributeNames=["RedrivePolicy"])
    except ClientError as exc:
        raise NotFoundError(f"queue {name}: {exc.response['Error']['Code']}") from exc
    redrive = attributes.get("Attributes", {}).get("RedrivePolicy")
    return {"status": "ACTIVE" if redrive else "NO_DEAD_LETTER_QUEUE"}


PROBES = {"table": probe_table, "bucket": probe_bucket, "queue": probe_queue}
