"""The event pump: what Lambda's SQS event source mapping does, for the embedded stack.

It long-polls the queue, hands each batch to the handler as the `{"Records": [...]}` event Lambda
builds, deletes the messages that succeeded and leaves the ones named in `batchItemFailures` (or
the whole batch, if the handler raised) to come back. SQS itself moves a message to the
dead-letter queue once it has been received `maxReceiveCount` times. The one local difference: a
failed message becomes visible again after `retry_delay` seconds instead of the queue's full
visibility timeout, so retries happen while you watch.
"""
from __future__ import annotations

import json
import threading
from typing import Any, Callable

from aws_lambda_powertools import Logger

logger = Logger(service="pixelpool-local", child=True)


class EventPump:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        queue_arn: str,
        handler: Callable[[dict], Any],
        region: str,
        batch_size: int = 10,
        wait_seconds: int = 1,
        retry_delay: int = 1,
    ) -> None:
        self._sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self._handler = handler
        self._region = region
        self._batch_size = batch_size
        self._wait_seconds = wait_seconds
        self._retry_delay = retry_delay
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._busy = threading.Lock()

    def start(self) -> "EventPump":
        self._thread = threading.Thread(target=self._run, name="event-pump", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._wait_seconds + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.pump_once(self._wait_seconds)
            except Exception:  # keep pumping; the message stays in the queue
                logger.exception("event pump iteration failed")
                self._stop.wait(1)

    def pump_once(self, wait_seconds: int = 0) -> int:
        """Receive one batch and deliver it; returns how many messages were received."""
        with self._busy:
            messages = self._sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self._batch_size,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return 0
            failed = self._deliver(messages)
            done = [m for m in messages if m["MessageId"] not in failed]
            if done:
                self._sqs.delete_message_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
                )
            retry = [m for m in messages if m["MessageId"] in failed]
            if retry:
                self._sqs.change_message_visibility_batch(
                    QueueUrl=self.queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": self._retry_delay}
                             for i, m in enumerate(retry)],
                )
            return len(messages)

    def drain(self, max_batches: int = 1000) -> int:
        """Deliver until the queue answers empty (failed messages may still come back later)."""
        total = 0
        for _ in range(max_batches):
            received = self.pump_once(0)
            if not received:
                break
            total += received
        return total

    def _deliver(self, messages: list[dict]) -> set[str]:
        event = {"Records": [self._record(m) for m in messages]}
        try:
            response = self._handler(event) or {}
        except Exception:
            logger.exception("handler failed for the whole batch", extra={"messages": len(messages)})
            return {m["MessageId"] for m in messages}
        return {failure["itemIdentifier"] for failure in response.get("batchItemFailures", [])}

    def _record(self, message: dict) -> dict:
        return {
            "messageId": message["MessageId"],
            "receiptHandle": message["ReceiptHandle"],
            "body": message["Body"],
            "attributes": message.get("Attributes", {}),
            "messageAttributes": message.get("MessageAttributes", {}),
            "md5OfBody": message.get("MD5OfBody", ""),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.queue_arn,
            "awsRegion": self._region,
        }


def take_notifications(sqs: Any, queue_url: str) -> list[str]:
    """Remove and return the S3 notifications queued so far (test events left out), for tests and
    benches that deliver them by hand: duplicated, reordered or batched as they choose."""
    bodies = []
    while True:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return [body for body in bodies if "Records" in json.loads(body)]
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
