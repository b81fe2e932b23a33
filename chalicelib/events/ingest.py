"""The ingest handler: S3 notifications of the share bucket, delivered by SQS in batches.

Each SQS message is processed on its own; failures are reported per message
(`batchItemFailures`) so SQS retries only those, and a message that keeps failing lands in the
dead-letter queue after `maxReceiveCount` deliveries.
"""
from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools import Logger
from chalice import Blueprint

from chalicelib.config import get_settings
from chalicelib.services import notifications

bp = Blueprint(__name__)
logger = Logger(child=True)


@lru_cache(maxsize=1)
def _batch():
    # Loaded by the ingest function only, not by every function that imports the app.
    from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

    return BatchProcessor(event_type=EventType.SQS), process_partial_response


def handle_record(record) -> None:
    for event in notifications.parse(record.body):
        logger.info("object event", extra={"bucket": event.bucket, "key": event.key, "event": event.event_name,
                                           "sequencer": event.sequencer})


@bp.on_sqs_message(queue=get_settings().ingest_queue, batch_size=10, name="ingest")
def ingest(event):
    processor, process_partial_response = _batch()
    return process_partial_response(
        event=event.to_dict(), record_handler=handle_record, processor=processor, context=event.context
    )
