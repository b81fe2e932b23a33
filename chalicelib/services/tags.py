"""Global tags: create, list, rename, recolor, delete (refused while in use unless forced).

Who may change or delete a tag is `GLOBAL_RULES` (services/access.py): its creator or an admin;
only an admin may force the deletion of a tag in use (it strips the tag from every image)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.errors import ValidationError
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.tags import Tag, TagRepository

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.store.image_tags import ImageTagRepository

NOT_NULLABLE = ("name", "color")


class TagService:
    def __init__(self, repository: TagRepository, activity: ActivityService, links: "ImageTagRepository",
                 access: "Access") -> None:
        self._access = access
        self._repository = repository
        self._activity = activity
        self._links = links

    def create(self, actor: Identity, name: str, color: str, description: str | None, category: str | None) -> Tag:
        self._access.require_global(actor, "tags.create")
        now = utcnow()
        tag = self._repository.create(
            Tag(
                id=new_id(),
                name=name,
                category=category,
                color=color.upper(),
                description=description,
                usage_count=0,
                created_by=actor.sub,
                created_at=now,
                updated_at=now,
            )
        )
        self._activity.record(actor, "tag", tag.id, "created", details={"name": tag.name})
        return tag

    def get(self, tag_id: str) -> Tag:
        return self._repository.get(tag_id)

    def list(self, search: str | None = None) -> list[Tag]:
        needle = (search or "").casefold()
        return [tag for tag in self._repository.list() if needle in tag.name.casefold()]

    def update(self, actor: Identity, tag_id: str, changes: dict) -> Tag:
        self._access.require_global(actor, "tags.update", owner=self._repository.get(tag_id).created_by,
                                    what="changing this tag")
        nulls = [field for field in NOT_NULLABLE if field in changes and changes[field] is None]
        if nulls:
            raise ValidationError(
                "Fields cannot be null",
                [{"field": field, "message": "may be omitted but not null", "type": "null_not_allowed"} for field in nulls],
            )
        if changes.get("color"):
            changes["color"] = changes["color"].upper()
        tag = self._repository.update(tag_id, changes) if changes else self._repository.get(tag_id)
        self._activity.record(actor, "tag", tag.id, "updated", details={"fields": sorted(changes)})
        return tag

    def delete(self, actor: Identity, tag_id: str, force: bool = False) -> Tag:
        # Forced: untag every image while the tag still exists (a failure can simply be retried),
        # delete it, then sweep links a concurrent tagging call added in between.
        owner = self._repository.get(tag_id).created_by
        self._access.require_global(actor, "tags.delete", owner=owner, what="deleting this tag")
        if force:
            self._access.require_global(actor, "tags.force_delete", what="deleting a tag in use (force)")
        untagged = self._links.drop_tag(tag_id) if force else 0
        tag = self._repository.delete(tag_id, only_if_unused=not force)
        untagged += self._links.drop_tag(tag_id) if force else 0
        self._activity.record(actor, "tag", tag.id, "deleted",
                              details={"name": tag.name, "force": force, "images_untagged": untagged})
        return tag
