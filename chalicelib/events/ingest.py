"""The ingest handler: S3 notifications of the share bucket, delivered by SQS in batches.

Failures are reported per message (`batchItemFailures`) so SQS retries only those, and a message
that keeps failing lands in the dead-letter queue after `maxReceiveCount` deliveries. The batch
is handled by the registry rather than Powertools' record-at-a-time processor because the keys
of a batch are decoded in parallel and duplicate events of one key collapse into one.
"""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.events import notifications
from chalicelib.services.container import services

bp = Blueprint(__name__)


# Chalice needs a queue name when the decorator runs; the real queue is wired by infra/template.json
# (the IngestSqsEventSource override), so nothing is read from the settings at import.
@bp.on_sqs_message(queue="pixelpool-ingest", batch_size=10, name="ingest")
def ingest(event):
    records = event.to_dict()["Records"]
    batch, unreadable = notifications.read([(record["messageId"], record["body"]) for record in records])
    failed = unreadable + services().registry.ingest(batch)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}
