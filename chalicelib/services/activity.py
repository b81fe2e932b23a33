"""The activity log every mutation writes to; later read as a project's timeline."""
from __future__ import annotations

from typing import Any

from chalicelib.services.identity import Identity
from chalicelib.store.activity import ActivityEntry, ActivityRepository
from chalicelib.clock import utcnow
from chalicelib.ids import new_id


class ActivityService:
    def __init__(self, repository: ActivityRepository) -> None:
        self._repository = repository

    def record(
        self,
        actor: Identity | None,
        entity_type: str,
        entity_id: str,
        action: str,
        *,
        project_id: str | None = None,
        details: dict[str, Any] | None = None,
        summary: str | None = None,
    ) -> ActivityEntry:
        entry = ActivityEntry(
            id=new_id(),
            entity_type=entity_type,
            entity_id=entity_id,
            action=action,
            actor=actor.sub if actor else None,
            project_id=project_id,
            created_at=utcnow(),
            details=details or {},
            summary=summary,
        )
        self._repository.add(entry)
        return entry

    def newest(self, project_id: str | None, limit: int = 50, after: str | None = None):
        return self._repository.newest(project_id, limit, after)
