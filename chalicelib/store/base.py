"""PynamoDB plumbing shared by the repositories: table binding, SDK-error translation, ids, time."""
from __future__ import annotations

import uuid
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from pynamodb.attributes import MapAttribute
from pynamodb.exceptions import DoesNotExist, PynamoDBException, TransactWriteError

from chalicelib.config import get_settings
from chalicelib.errors import StoreError
from chalicelib.store.aws import endpoint_url


def table_meta(setting: str) -> type:
    """A PynamoDB `Meta` bound to the table named by `setting` (read once, at import)."""
    settings = get_settings()
    return type(
        "Meta",
        (),
        {
            "table_name": getattr(settings, setting),
            "region": settings.region,
            "host": endpoint_url("dynamodb"),
            "max_retry_attempts": 5,
            "connect_timeout_seconds": 5,
            "read_timeout_seconds": 10,
        },
    )


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def plain(value: Any) -> Any:
    """A raw `MapAttribute` as plain JSON-able Python (whole-number floats back to int)."""
    if isinstance(value, MapAttribute):
        value = value.as_dict()
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def condition_failed(exc: TransactWriteError, index: int) -> bool:
    """Whether the transaction's action at `index` was cancelled by its condition.

    PynamoDB sends a transaction's actions grouped — condition checks, deletes, puts, updates —
    and the cancellation reasons follow that order, so `index` counts in that order.
    """
    reasons = exc.cancellation_reasons or []
    return index < len(reasons) and reasons[index] is not None and reasons[index].code == "ConditionalCheckFailed"


@contextmanager
def store_errors(action: str) -> Iterator[None]:
    """Re-raise SDK failures the caller cannot act on as a domain `StoreError`."""
    try:
        yield
    except DoesNotExist:
        raise  # a lookup answer, for the repository to turn into NotFoundError
    except PynamoDBException as exc:
        raise StoreError(f"{action} failed: {exc.msg}") from exc
