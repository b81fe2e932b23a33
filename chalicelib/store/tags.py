"""Tags and their case-insensitive name guards, in one table.

Items: the tag (`pk = TAG#<id>`, in the sparse `by_name` index under `kind = TAG`) and one guard
per lower-cased name (`pk = NAME#<name>`), written in the same transaction so two concurrent
creates of `Cat` and `cat` cannot both succeed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Iterator

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store import changes as change_log
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, entity, store_errors, table_meta

TAG_KIND = "TAG"


class TagsByName(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_name"
        projection = AllProjection()

    kind = UnicodeAttribute(hash_key=True)
    name_lower = UnicodeAttribute(range_key=True)


class TagItem(Model):
    Meta = table_meta("tags_table")

    pk = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default=TAG_KIND)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    name_lower = UnicodeAttribute()
    category = UnicodeAttribute(null=True)
    color = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    usage_count = NumberAttribute(default=0)
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()

    by_name = TagsByName()


class TagNameGuard(Model):
    Meta = table_meta("tags_table")

    pk = UnicodeAttribute(hash_key=True)
    tag_id = UnicodeAttribute()


@dataclass(frozen=True)
class Tag:
    id: str
    name: str
    category: str | None
    color: str
    description: str | None
    usage_count: int
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def tag_key(tag_id: str) -> str:
    return f"TAG#{tag_id}"


def _name_key(name: str) -> str:
    return f"NAME#{name.casefold()}"


def _to_tag(item: TagItem) -> Tag:
    return entity(Tag, item)

class TagRepository:
    def create(self, tag: Tag) -> Tag:
        item = TagItem(
            pk=tag_key(tag.id),
            id=tag.id,
            name=tag.name,
            name_lower=tag.name.casefold(),
            category=tag.category,
            color=tag.color,
            description=tag.description,
            usage_count=0,
            created_by=tag.created_by,
            created_at=tag.created_at,
            updated_at=tag.updated_at,
        )
        guard = TagNameGuard(pk=_name_key(tag.name), tag_id=tag.id)
        try:
            with Transaction("creating a tag", token=f"tag-create-{tag.id}") as tx:
                tx.put(item, condition=TagItem.pk.does_not_exist(), name="tag")
                tx.put(guard, condition=TagNameGuard.pk.does_not_exist(), name="guard")
        except TransactionCancelled as exc:
            if exc.failed("guard"):
                raise ConflictError(f"A tag named '{tag.name}' already exists") from exc
            raise
        change_log.record(change_log.TAGS_STREAM, tags=[tag.id])
        return _to_tag(item)

    def get(self, tag_id: str) -> Tag:
        return _to_tag(self._get_item(tag_id))

    def _get_item(self, tag_id: str) -> TagItem:
        try:
            with store_errors("reading a tag"):
                return TagItem.get(tag_key(tag_id))
        except DoesNotExist as exc:
            raise NotFoundError(f"Tag '{tag_id}' not found") from exc

    def find(self, tag_ids: list[str]) -> dict[str, Tag]:
        """The tags that exist among `tag_ids`, read by key (BatchGetItem, strongly consistent)."""
        keys = [tag_key(tag_id) for tag_id in dict.fromkeys(tag_ids)]
        if not keys:
            return {}
        with store_errors("reading tags"):
            return {item.id: _to_tag(item) for item in TagItem.batch_get(keys, consistent_read=True)}

    def list(self) -> Iterator[Tag]:
        """Every tag, ordered by lower-cased name (one Query on the sparse index)."""
        with store_errors("listing tags"):
            for item in TagItem.by_name.query(TAG_KIND):
                yield _to_tag(item)

    def update(self, tag_id: str, changes: dict) -> Tag:
        """Apply `changes` (already validated); a rename moves the name guard in one transaction."""
        item = self._get_item(tag_id)
        old_key = _name_key(item.name)
        for field, value in changes.items():
            setattr(item, field, value)
        item.name_lower = item.name.casefold()
        item.updated_at = utcnow()
        new_key = _name_key(item.name)
        renamed = new_key != old_key
        try:
            with Transaction("updating a tag") as tx:
                tx.put(item, condition=TagItem.pk.exists(), name="tag")
                if renamed:
                    tx.put(TagNameGuard(pk=new_key, tag_id=tag_id), condition=TagNameGuard.pk.does_not_exist(),
                           name="new guard")
                    tx.delete(TagNameGuard(pk=old_key), condition=TagNameGuard.tag_id == tag_id)
        except TransactionCancelled as exc:
            if exc.failed("tag"):
                raise NotFoundError(f"Tag '{tag_id}' not found") from exc
            if exc.failed("new guard"):
                raise ConflictError(f"A tag named '{item.name}' already exists") from exc
            raise
        change_log.record(change_log.TAGS_STREAM, tags=[tag_id])
        return _to_tag(item)

    def delete(self, tag_id: str, *, only_if_unused: bool) -> Tag:
        """Delete the tag and its name guard; with `only_if_unused`, refuse while it is in use."""
        item = self._get_item(tag_id)
        condition = TagItem.pk.exists()
        if only_if_unused:
            condition &= TagItem.usage_count <= 0
        try:
            with Transaction("deleting a tag") as tx:
                tx.delete(item, condition=condition, name="tag")
                tx.delete(TagNameGuard(pk=_name_key(item.name)), condition=TagNameGuard.tag_id == tag_id)
        except TransactionCancelled as exc:
            if exc.failed("tag"):
                current = self._get_item(tag_id)
                raise ConflictError(
                    f"Tag '{current.name}' is used by {int(current.usage_count)} image(s); "
                    "pass force=true to delete it anyway"
                ) from exc
            raise
        change_log.record(change_log.TAGS_STREAM, tags=[tag_id])
        return _to_tag(item)

    def set_usage(self, tag_id: str, count: int) -> None:
        """Set the usage count to what the links say (after a purge removed some; re-runnable)."""
        with conditional("counting tag usage", NotFoundError(f"Tag '{tag_id}' not found")):
            TagItem(pk=tag_key(tag_id)).update(actions=[TagItem.usage_count.set(count)], condition=TagItem.pk.exists())

    def adjust_usage(self, tag_id: str, delta: int) -> int:
        """Atomically add `delta` to the tag's usage count; returns the new count."""
        item = TagItem(pk=tag_key(tag_id))
        with conditional("counting tag usage", NotFoundError(f"Tag '{tag_id}' not found")):
            item.update(actions=[TagItem.usage_count.add(delta)], condition=TagItem.pk.exists())
        return int(item.usage_count)
