"""Exports: records in the project's partition of ProjectsTable, numbered per project and mode.

Items:
- `sk = EXPORT#<export id>`: the export (name, version, mode, format, frozen filter and options,
  status, progress, summary, artifact);
- `sk = COUNTER#EXPORT#<mode>`: the last version number given for that mode.

A new export takes version `last + 1` in one transaction with its record (the counter is updated
only if it is still `last`), so concurrent creates get consecutive numbers with no gap and no
duplicate: the loser of a race reads the counter again and takes the next one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, NumberAttribute, NumberSetAttribute, UnicodeAttribute, \
    UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta

PENDING, PROCESSING, COMPLETED, FAILED = "pending", "processing", "completed", "failed"
NUMBERING_ATTEMPTS = 20


class ExportItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    version_number = NumberAttribute()
    export_mode = UnicodeAttribute()
    output_format = UnicodeAttribute()
    status = UnicodeAttribute()
    image_filter = JSONAttribute()
    options = JSONAttribute()
    summary = JSONAttribute(null=True)
    error = UnicodeAttribute(null=True)
    artifact_key = UnicodeAttribute(null=True)
    artifact_size_bytes = NumberAttribute(null=True)
    shards_total = NumberAttribute(null=True)
    shards_done = NumberSetAttribute(null=True)
    datasets = JSONAttribute(null=True)  # ids of the datasets whose images it holds (purged with them)
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    started_at = UTCDateTimeAttribute(null=True)
    completed_at = UTCDateTimeAttribute(null=True)


class CounterItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    value = NumberAttribute()


@dataclass(frozen=True)
class Export:
    id: str
    project_id: str
    name: str
    version_number: int
    export_mode: str
    output_format: str
    status: str
    image_filter: dict[str, Any]
    options: dict[str, Any]
    summary: dict[str, Any] | None
    error: str | None
    artifact_key: str | None
    artifact_size_bytes: int | None
    shards_total: int | None
    shards_done: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    datasets: tuple[str, ...] = ()


def _sk(export_id: str) -> str:
    return f"EXPORT#{export_id}"


def _counter_sk(mode: str) -> str:
    return f"COUNTER#EXPORT#{mode}"


def _to_export(item: ExportItem) -> Export:
    return entity(Export, item, project_id=item.pk, shards_done=len(item.shards_done or ()),
                  datasets=tuple(item.datasets or ()))

class ExportRepository:
    def create(self, project_id: str, export_id: str, mode: str, output_format: str, name: str | None,
               image_filter: dict, options: dict, created_by: str | None, now: datetime,
               default_name) -> Export:
        """Record a pending export under the next version number of (project, mode).
        `default_name(version)` names it when `name` is None."""
        for _ in range(NUMBERING_ATTEMPTS):
            last = self._last_version(project_id, mode)
            version = last + 1
            item = ExportItem(pk=project_id, sk=_sk(export_id), id=export_id, name=name or default_name(version),
                              version_number=version, export_mode=mode, output_format=output_format, status=PENDING,
                              image_filter=image_filter, options=options, created_by=created_by, created_at=now)
            counter = CounterItem(pk=project_id, sk=_counter_sk(mode))
            guard = CounterItem.value.does_not_exist() if last == 0 else CounterItem.value == last
            try:
                with Transaction("creating an export") as tx:
                    tx.put(item, condition=ExportItem.sk.does_not_exist(), name="export")
                    tx.update(counter, actions=[CounterItem.value.set(version)], condition=guard, name="counter")
                return _to_export(item)
            except TransactionCancelled as exc:
                if exc.failed("export"):
                    raise ConflictError(f"Export '{export_id}' exists") from exc
                if not (exc.failed("counter") or exc.conflicted):
                    raise
        raise ConflictError("Too many exports are being created at once for this mode; retry")

    def _last_version(self, project_id: str, mode: str) -> int:
        with store_errors("reading the export counter"):
            try:
                return int(CounterItem.get(project_id, _counter_sk(mode), consistent_read=True).value)
            except DoesNotExist:
                return 0

    def get(self, project_id: str, export_id: str) -> Export:
        with store_errors("reading an export"):
            try:
                return _to_export(ExportItem.get(project_id, _sk(export_id), consistent_read=True))
            except DoesNotExist as exc:
                raise NotFoundError(f"Export '{export_id}' not found") from exc

    def of_project(self, project_id: str) -> list[Export]:
        """Every export of a project, newest first."""
        with store_errors("listing exports"):
            found = [_to_export(item) for item in ExportItem.query(
                project_id, ExportItem.sk.startswith("EXPORT#"), consistent_read=True)]
        return sorted(found, key=lambda export: (export.created_at, export.version_number), reverse=True)

    def update(self, project_id: str, export_id: str, changes: dict[str, Any], *, expect: tuple[str, ...] = ()) -> bool:
        """Apply `changes`; with `expect`, only while the status is one of them (False otherwise)."""
        actions = [getattr(ExportItem, name).remove() if value is None else getattr(ExportItem, name).set(value)
                   for name, value in changes.items()]
        condition = ExportItem.sk.exists()
        if expect:
            condition &= ExportItem.status.is_in(*expect)
        with conditional("updating an export") as write:
            ExportItem(pk=project_id, sk=_sk(export_id)).update(actions=actions, condition=condition)
        return write.done

    def shard_done(self, project_id: str, export_id: str, shard: int) -> None:
        """Count a shard as built (a set, so a retried step counts once)."""
        with store_errors("recording export progress"):
            ExportItem(pk=project_id, sk=_sk(export_id)).update(actions=[ExportItem.shards_done.add({shard})],
                                                                condition=ExportItem.sk.exists())

    def delete(self, project_id: str, export_id: str) -> None:
        with store_errors("deleting an export"):
            ExportItem(pk=project_id, sk=_sk(export_id)).delete()
