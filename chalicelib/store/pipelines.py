"""What pipeline authentication keeps: the signatures already used (PipelineSignaturesTable, one item
per signature, `expires_at` its TTL) and the pipelines' keys (one Secrets Manager secret)."""
from __future__ import annotations

import json

from botocore.exceptions import BotoCoreError, ClientError
from pynamodb.attributes import NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.errors import StoreError
from chalicelib.store.aws import client
from chalicelib.store.dynamo import conditional, table_meta


class SignatureItem(Model):
    Meta = table_meta("pipeline_signatures_table")

    signature = UnicodeAttribute(hash_key=True)
    key_id = UnicodeAttribute()
    expires_at = NumberAttribute()


class SignatureRepository:
    def claim(self, key_id: str, signature: str, expires_at: int) -> bool:
        """Record a signature as used: True the first time, False when it was used already
        (a conditional PutItem, so two concurrent deliveries of one request cannot both pass)."""
        item = SignatureItem(signature=f"{key_id}#{signature}", key_id=key_id, expires_at=expires_at)
        with conditional("recording a pipeline signature") as write:
            item.save(condition=SignatureItem.signature.does_not_exist())
        return write.done


def read_keys(secret_id: str) -> dict[str, str]:
    """The `keys` map of the secret (`{"keys": {"<key id>": "<secret>"}}`)."""
    try:
        value = client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]
    except (BotoCoreError, ClientError) as exc:
        raise StoreError(f"reading the pipeline keys failed: {exc}") from exc
    try:
        keys = json.loads(value).get("keys") or {}
    except (ValueError, AttributeError) as exc:
        raise StoreError("the pipeline keys secret is not {\"keys\": {...}}") from exc
    return {str(key_id): str(secret) for key_id, secret in keys.items() if secret}
