"""Image ↔ tag links, kept exact with the tag's usage count and the image's `tag_ids` set.

A link is one item keyed (`tag_id`, `image_id`), so "images carrying a tag" (Explore's tag
filters) is a strongly consistent Query of the base table; `by_image` indexes the other way.
Adding links writes, in one transaction per tag and slice of images: each new link (only if
absent), each image's `tag_ids` set, and the tag's usage count by the number of links created.
Two concurrent bulk operations therefore cannot both count the same link, and a crash can never
leave the count and the links apart. Links live in their own table so that rebuilding the image
registry from the bucket does not lose them.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import random
import time
from typing import Iterable, Iterator

from pynamodb.attributes import UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import NotFoundError, StoreError
from chalicelib.store import changes
from chalicelib.store.dynamo import Transaction, TransactionCancelled, conditional, connection, store_errors, table_meta
from chalicelib.store.images import ImageItem
from chalicelib.store.tags import TagItem, tag_key

# Two actions per image (link, image set) plus the tag's counter: within the 100-action limit.
SLICE = 49
ATTEMPTS = 8


class ByImage(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_image"
        projection = KeysOnlyProjection()

    image_id = UnicodeAttribute(hash_key=True)
    tag_id = UnicodeAttribute(range_key=True)


class ImageTagItem(Model):
    Meta = table_meta("image_tags_table")

    tag_id = UnicodeAttribute(hash_key=True)
    image_id = UnicodeAttribute(range_key=True)
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()

    by_image = ByImage()


def _backoff(attempt: int) -> None:
    time.sleep(random.uniform(0, 0.02 * 2**attempt))


class ImageTagRepository:
    def linked(self, tag_id: str, image_ids: Iterable[str]) -> set[str]:
        """Which of `image_ids` carry `tag_id` (BatchGetItem, strongly consistent, 100 keys a
        request, in parallel)."""
        keys = [(tag_id, image) for image in dict.fromkeys(image_ids)]
        chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]

        def read(chunk: list[tuple[str, str]]) -> set[str]:
            with store_errors("reading tag links"):
                return {item.image_id for item in ImageTagItem.batch_get(chunk, consistent_read=True,
                                                                         attributes_to_get=["image_id"])}

        if len(chunks) <= 1:
            return read(chunks[0]) if chunks else set()
        with ThreadPoolExecutor(max_workers=8) as pool:
            return set().union(*pool.map(read, chunks))

    def link(self, tag_id: str, image_ids: list[str], created_by: str | None) -> set[str]:
        """Link `tag_id` to every image in `image_ids` not already linked; returns the images newly linked."""
        added: set[str] = set()
        for start in range(0, len(image_ids), SLICE):
            added |= self._apply(tag_id, image_ids[start : start + SLICE], created_by, adding=True)
        return added

    def unlink(self, tag_id: str, image_ids: list[str]) -> set[str]:
        """Remove the links that exist; returns the images that lost the tag."""
        removed: set[str] = set()
        for start in range(0, len(image_ids), SLICE):
            removed |= self._apply(tag_id, image_ids[start : start + SLICE], None, adding=False)
        return removed

    def images_with(self, tag_id: str) -> Iterator[str]:
        """Every image carrying `tag_id` (strongly consistent: a tag just added is seen)."""
        # The table connection's raw pages: one string per link, no model object (Explore reads
        # thousands of links per call).
        table, start = connection(ImageTagItem), None
        while True:
            with store_errors("reading tag links"):
                page = table.query(tag_id, consistent_read=True, attributes_to_get=["image_id"],
                                        exclusive_start_key=start)
            for item in page.get("Items", ()):
                yield item["image_id"]["S"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return

    def tags_of(self, image_id: str) -> list[str]:
        with store_errors("reading tag links"):
            return [item.tag_id for item in ImageTagItem.by_image.query(image_id)]

    def delete_links(self, links: Iterable[tuple[str, str]]) -> int:
        """Delete (tag, image) links by key, without touching the images' sets (their records are
        being deleted: a dataset's purge; the tags' counts are the caller's). Returns how many."""
        removed = 0
        with store_errors("removing tag links"):
            with ImageTagItem.batch_write() as batch:
                for tag_id, image in links:
                    batch.delete(ImageTagItem(tag_id=tag_id, image_id=image))
                    removed += 1
        return removed

    def drop_tag(self, tag_id: str) -> int:
        """Remove every link of a deleted tag and the tag from each image's set; returns links removed."""
        image_ids = list(self.images_with(tag_id))
        for image in image_ids:
            with conditional(f"untagging image {image}"):  # an image removed meanwhile has no set to clean
                ImageItem(id=image).update(actions=[ImageItem.tag_ids.delete({tag_id})], condition=ImageItem.id.exists())
        with store_errors("removing tag links"):
            with ImageTagItem.batch_write() as batch:
                for image in image_ids:
                    batch.delete(ImageTagItem(tag_id=tag_id, image_id=image))
        changes.record(changes.TAGS_STREAM, tagged=image_ids)
        return len(image_ids)

    def _apply(self, tag_id: str, image_ids: list[str], created_by: str | None, adding: bool) -> set[str]:
        for attempt in range(ATTEMPTS):
            present = self.linked(tag_id, image_ids)
            todo = [image for image in dict.fromkeys(image_ids) if (image not in present) == adding]
            if not todo:
                return set()
            try:
                self._transact(tag_id, todo, created_by, adding)
                return set(todo)
            except TransactionCancelled as exc:
                # A tag deleted since the caller checked it never comes back: retrying cannot help.
                if exc.failed("tag"):
                    raise NotFoundError(f"Tag '{tag_id}' not found") from exc
                # A concurrent call linked or unlinked some of these (ConditionalCheckFailed) or
                # touched the same items (TransactionConflict): read again and redo the rest.
                if attempt == ATTEMPTS - 1:
                    raise StoreError(f"tagging did not settle after {ATTEMPTS} attempts: {exc.message}") from exc
                _backoff(attempt)
        return set()

    @staticmethod
    def _transact(tag_id: str, image_ids: list[str], created_by: str | None, adding: bool) -> None:
        now = utcnow()
        with Transaction("tagging images") as tx:
            for image in image_ids:
                link = ImageTagItem(tag_id=tag_id, image_id=image, created_by=created_by, created_at=now)
                if adding:
                    tx.put(link, condition=ImageTagItem.tag_id.does_not_exist())
                    tx.update(ImageItem(id=image), actions=[ImageItem.tag_ids.add({tag_id})],
                              condition=ImageItem.id.exists())
                else:
                    tx.delete(link, condition=ImageTagItem.tag_id.exists())
                    tx.update(ImageItem(id=image), actions=[ImageItem.tag_ids.delete({tag_id})],
                              condition=ImageItem.id.exists())
            delta = len(image_ids) if adding else -len(image_ids)
            tx.update(TagItem(pk=tag_key(tag_id)), actions=[TagItem.usage_count.add(delta)],
                      condition=TagItem.pk.exists(), name="tag")
            changes.put_in(tx, changes.TAGS_STREAM, tagged=image_ids)
