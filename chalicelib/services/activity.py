"""The activity log every mutation writes to; later read as a project's timeline."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from chalicelib.services.identity import Identity
from chalicelib.store.activity import (
    DATASETS_SCOPE, ActivityEntry, ActivityRepository, dataset_scope, mentions_scope,
)
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

    # The datasets' audit log --------------------------------------------------------------------

    def audit(self, actor: Identity | None, dataset_id: str, action: str, *, details: dict[str, Any] | None = None,
              summary: str | None = None, once: tuple[str, datetime] | None = None) -> ActivityEntry:
        """Append to the dataset's audit log (and to the feed of every dataset): `created`,
        `uploaded`, and later `deleted`, `restored`, `purged`, `backup_created`. A step that may
        run again passes `once` (the entry's id and time): a second write lands on the same items."""
        entry_id, at = once or (new_id(), utcnow())
        entry = ActivityEntry(id=entry_id, entity_type="dataset", entity_id=dataset_id, action=action,
                              actor=actor.sub if actor else None, project_id=None, created_at=at,
                              details=details or {}, summary=summary)
        self._repository.add(entry, (dataset_scope(dataset_id), DATASETS_SCOPE))
        return entry

    def audit_log(self, dataset_id: str | None, limit: int, after: str | None = None):
        """One dataset's audit entries (every dataset's: None), newest first, and where to go on."""
        scope = dataset_scope(dataset_id) if dataset_id else DATASETS_SCOPE
        return self._repository.newest_in(scope, limit, after)

    # Mentions -----------------------------------------------------------------------------------

    def mention(self, actor: Identity, user_id: str, project_id: str, comment_id: str,
                details: dict[str, Any]) -> ActivityEntry:
        """Record that `actor` mentioned `user_id` in a comment, in that user's mentions."""
        entry = ActivityEntry(id=new_id(), entity_type="comment", entity_id=comment_id, action="mentioned",
                              actor=actor.sub, project_id=project_id, created_at=utcnow(),
                              details={**details, "user_id": user_id}, summary=f"{actor.sub} mentioned {user_id}")
        self._repository.add(entry, (mentions_scope(user_id),))
        return entry

    def mentions(self, user_id: str, limit: int, after: str | None = None):
        """A user's mentions, newest first, and where to go on."""
        return self._repository.newest_in(mentions_scope(user_id), limit, after)
