"""Saved filters: named Explore filters a project keeps (and exports reuse)."""
from __future__ import annotations

from dataclasses import replace

from chalicelib.errors import BadRequestError
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.saved_filters import SavedFilter, SavedFilterRepository


class SavedFilterService:
    def __init__(self, access: Access, filters: SavedFilterRepository, activity: ActivityService) -> None:
        self._access = access
        self._filters = filters
        self._activity = activity

    def list(self, actor: Identity, project_id: str) -> list[SavedFilter]:
        self._access.require(actor, project_id, "filters.read")
        return sorted(self._filters.filters(project_id), key=lambda saved: (saved.created_at, saved.id), reverse=True)

    def get(self, actor: Identity, project_id: str, filter_id: str) -> SavedFilter:
        self._access.require(actor, project_id, "filters.read")
        return self._filters.filter(project_id, filter_id)

    def create(self, actor: Identity, project_id: str, name: str, image_filter: ImageFilter) -> SavedFilter:
        self._access.require(actor, project_id, "filters.write")
        now = utcnow()
        saved = self._filters.put_filter(SavedFilter(id=new_id(), project_id=project_id, name=name,
                                                      filter=image_filter.applied(), created_by=actor.sub,
                                                      created_at=now, updated_at=now), create=True)
        self._activity.record(actor, "filter", saved.id, "saved", project_id=project_id,
                              summary=f'Saved filter "{name}"', details={"filter": saved.filter})
        return saved

    def update(self, actor: Identity, project_id: str, filter_id: str, name: str | None,
               image_filter: ImageFilter | None) -> SavedFilter:
        self._access.require(actor, project_id, "filters.write")
        current = self._filters.filter(project_id, filter_id)
        changed = replace(current, name=name if name is not None else current.name,
                          filter=image_filter.applied() if image_filter is not None else current.filter,
                          updated_at=utcnow())
        saved = self._filters.put_filter(changed, create=False)
        self._activity.record(actor, "filter", filter_id, "updated", project_id=project_id,
                              summary=f'Updated filter "{saved.name}"')
        return saved

    def delete(self, actor: Identity, project_id: str, filter_id: str) -> SavedFilter:
        self._access.require(actor, project_id, "filters.write")
        current = self._filters.filter(project_id, filter_id)
        self._filters.delete_filter(project_id, filter_id)
        self._activity.record(actor, "filter", filter_id, "deleted", project_id=project_id,
                              summary=f'Deleted filter "{current.name}"')
        return current

    def resolve(self, actor: Identity, project_id: str, image_filter: ImageFilter | None,
                saved_filter_id: str | None) -> ImageFilter | None:
        """The filter a request selects with: its own filter object, or the saved filter it names
        (the one place a saved filter becomes a filter object: tasks, exports)."""
        if saved_filter_id is None:
            return image_filter
        if image_filter is not None:
            raise BadRequestError("Give either `filter` or `saved_filter_id`, not both")
        return ImageFilter.model_validate(self.get(actor, project_id, saved_filter_id).filter)
