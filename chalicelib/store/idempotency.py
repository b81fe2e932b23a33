"""Powertools idempotency's DynamoDB persistence layer, on IdempotencyTable (`id`, TTL `expiration`)."""
from __future__ import annotations

from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

from chalicelib.config import get_settings
from chalicelib.store.aws import client


def persistence_layer() -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=get_settings().idempotency_table, boto3_client=client("dynamodb"))
