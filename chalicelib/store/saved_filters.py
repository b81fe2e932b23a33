"""Saved filters, items of their project's partition in ProjectsTable (`pk = <project id>`,
`sk = FILTER#<filter id>`): a name and an `ImageFilter` stored as JSON."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.errors import NotFoundError
from chalicelib.store.dynamo import conditional, entity, store_errors, table_meta


class FilterItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    filter = JSONAttribute()
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class SavedFilter:
    id: str
    project_id: str
    name: str
    filter: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def filter_sk(filter_id: str) -> str:
    return f"FILTER#{filter_id}"


def _to_filter(item: FilterItem) -> SavedFilter:
    return entity(SavedFilter, item, project_id=item.pk)

class SavedFilterRepository:
    def put_filter(self, saved: SavedFilter, *, create: bool) -> SavedFilter:
        item = FilterItem(pk=saved.project_id, sk=filter_sk(saved.id), id=saved.id, name=saved.name,
                          filter=saved.filter, created_by=saved.created_by, created_at=saved.created_at,
                          updated_at=saved.updated_at)
        condition = FilterItem.sk.does_not_exist() if create else FilterItem.sk.exists()
        with conditional("saving a filter", NotFoundError(f"Saved filter '{saved.id}' not found")):
            item.save(condition=condition)
        return _to_filter(item)

    def filter(self, project_id: str, filter_id: str) -> SavedFilter:
        try:
            with store_errors("reading a saved filter"):
                return _to_filter(FilterItem.get(project_id, filter_sk(filter_id), consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Saved filter '{filter_id}' not found") from exc

    def filters(self, project_id: str) -> list[SavedFilter]:
        with store_errors("listing saved filters"):
            return [_to_filter(item) for item in FilterItem.query(
                project_id, FilterItem.sk.startswith("FILTER#"), consistent_read=True)]

    def delete_filter(self, project_id: str, filter_id: str) -> None:
        with conditional("deleting a filter", NotFoundError(f"Saved filter '{filter_id}' not found")):
            FilterItem(pk=project_id, sk=filter_sk(filter_id)).delete(condition=FilterItem.sk.exists())
