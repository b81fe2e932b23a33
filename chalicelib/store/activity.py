"""The activity log: one item per mutation, partitioned by project (or `GLOBAL`), newest last; and
the datasets' audit log in the same table: each entry under its dataset (`DATASET#<id>`) and in the
feed of every dataset (`DATASETS`), append-only, kept after the dataset is purged; and each user's
mentions in comments (`MENTIONS#<user>`).

`sk = <ISO time>#<id>` keeps a partition in time order, so a timeline is one Query read backwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pynamodb.attributes import JSONAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model

from chalicelib.store.dynamo import entity, store_errors, table_meta

GLOBAL_SCOPE = "GLOBAL"
DATASETS_SCOPE = "DATASETS"


def dataset_scope(dataset_id: str) -> str:
    return f"DATASET#{dataset_id}"


def mentions_scope(user_id: str) -> str:
    """Where a user's mentions are recorded, one entry each, newest last."""
    return f"MENTIONS#{user_id}"


class ActivityItem(Model):
    Meta = table_meta("activity_table")

    scope = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    entity_type = UnicodeAttribute()
    entity_id = UnicodeAttribute()
    action = UnicodeAttribute()
    actor = UnicodeAttribute(null=True)
    project_id = UnicodeAttribute(null=True)
    summary = UnicodeAttribute(null=True)
    details = JSONAttribute(default=dict)
    created_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class ActivityEntry:
    id: str
    entity_type: str
    entity_id: str
    action: str
    actor: str | None
    project_id: str | None
    created_at: datetime
    details: dict[str, Any] = field(default_factory=dict)
    summary: str | None = None


def _scope(project_id: str | None) -> str:
    return f"PROJECT#{project_id}" if project_id else GLOBAL_SCOPE


def _to_entry(item: ActivityItem) -> ActivityEntry:
    return entity(ActivityEntry, item)

class ActivityRepository:
    def add(self, entry: ActivityEntry, scopes: tuple[str, ...] | None = None) -> None:
        """Append `entry` to its project's (or the global) timeline, or to each of `scopes`."""
        for scope in scopes or (_scope(entry.project_id),):
            self._put(entry, scope)

    @staticmethod
    def _put(entry: ActivityEntry, scope: str) -> None:
        item = ActivityItem(
            scope=scope,
            sk=f"{entry.created_at.isoformat()}#{entry.id}",
            id=entry.id,
            entity_type=entry.entity_type,
            entity_id=entry.entity_id,
            action=entry.action,
            actor=entry.actor,
            project_id=entry.project_id,
            details=entry.details,
            summary=entry.summary,
            created_at=entry.created_at,
        )
        with store_errors("recording activity"):
            item.save()

    def newest(self, project_id: str | None, limit: int, after: str | None = None) -> tuple[list[ActivityEntry], str | None]:
        """One page of a scope's entries, newest first, and the sort key to continue after (or None).

        Only the sort key travels to the caller: the partition is always the one asked for, so a
        cursor can never reach into another project's timeline.
        """
        return self.newest_in(_scope(project_id), limit, after)

    def newest_in(self, scope: str, limit: int, after: str | None = None) -> tuple[list[ActivityEntry], str | None]:
        start = {"scope": {"S": scope}, "sk": {"S": after}} if after else None
        with store_errors("reading activity"):
            result = ActivityItem.query(scope, scan_index_forward=False, limit=limit, last_evaluated_key=start)
            entries = [_to_entry(item) for item in result]
            last = result.last_evaluated_key
            return entries, last["sk"]["S"] if last else None
