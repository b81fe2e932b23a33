"""Long-running operations (register, reindex, later imports and exports): status and progress.

One item per operation; `done` moves by atomic ADD as chunks finish, so parallel Map branches
never lose a count. Results too big for an item live in the cache bucket (`result_key`).
Items expire by TTL 30 days after creation.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pynamodb.attributes import MapAttribute, NumberAttribute, NumberSetAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import NotFoundError
from chalicelib.store.dynamo import conditional, entity, store_errors, table_meta

RETENTION = timedelta(days=30)
PENDING, RUNNING, COMPLETED, FAILED = "pending", "running", "completed", "failed"


class OperationItem(Model):
    Meta = table_meta("operations_table")

    id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute()
    status = UnicodeAttribute()
    total = NumberAttribute(null=True)
    done = NumberAttribute(default=0)
    chunks_done = NumberSetAttribute(null=True)
    params = MapAttribute(null=True)
    result = MapAttribute(null=True)
    result_key = UnicodeAttribute(null=True)
    error = UnicodeAttribute(null=True)
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    finished_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute()


@dataclass(frozen=True)
class Operation:
    id: str
    kind: str
    status: str
    total: int | None
    done: int
    params: dict
    result: dict | None
    result_key: str | None
    error: str | None
    created_by: str | None
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None


def _to_operation(item: OperationItem) -> Operation:
    return entity(Operation, item)

class OperationRepository:
    def create(self, operation_id: str, kind: str, params: dict, created_by: str | None) -> Operation:
        now = utcnow()
        item = OperationItem(id=operation_id, kind=kind, status=PENDING, done=0, params=params,
                             created_by=created_by, created_at=now, updated_at=now, expires_at=now + RETENTION)
        with store_errors("creating an operation"):
            item.save(condition=OperationItem.id.does_not_exist())
        return _to_operation(item)

    def get(self, operation_id: str) -> Operation:
        try:
            with store_errors("reading an operation"):
                return _to_operation(OperationItem.get(operation_id, consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Operation '{operation_id}' not found") from exc

    def start(self, operation_id: str, total: int) -> None:
        self._update(operation_id, [OperationItem.status.set(RUNNING), OperationItem.total.set(total)])

    def advance(self, operation_id: str, chunk: int, done: int) -> bool:
        """Count chunk `chunk` as done (`done` more items) once, however often its step runs."""
        with conditional(f"updating operation {operation_id}") as write:
            OperationItem(id=operation_id).update(
                actions=[OperationItem.done.add(done), OperationItem.chunks_done.add({chunk}),
                         OperationItem.updated_at.set(utcnow())],
                condition=OperationItem.id.exists() & ~OperationItem.chunks_done.contains(chunk),
            )
        return write.done

    def finish(self, operation_id: str, result: dict, result_key: str | None) -> None:
        actions = [OperationItem.status.set(COMPLETED), OperationItem.result.set(result),
                   OperationItem.finished_at.set(utcnow())]
        if result_key:
            actions.append(OperationItem.result_key.set(result_key))
        self._update(operation_id, actions)

    def fail(self, operation_id: str, error: str) -> None:
        self._update(operation_id, [OperationItem.status.set(FAILED), OperationItem.error.set(error[:2000]),
                                    OperationItem.finished_at.set(utcnow())])

    @staticmethod
    def _update(operation_id: str, actions: list) -> None:
        with conditional(f"updating operation {operation_id}", NotFoundError(f"Operation '{operation_id}' not found")):
            OperationItem(id=operation_id).update(
                actions=[*actions, OperationItem.updated_at.set(utcnow())], condition=OperationItem.id.exists()
            )
