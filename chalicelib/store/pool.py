"""Project pools: which registry images a project works with (`project_id`, `image_id`).

A pool entry carries a copy of the image's filterable facts (path, size, dimensions, status,
landing time), so Explore reads a project's pool with one paginated Query of one partition
instead of a BatchGetItem per hundred images. Paths never change for an id (the id derives from
the path); the other facts change only when an object is replaced, and ingestion then refreshes
every copy through the `by_image` index (`image_id`, `project_id`). Tags are not copied: Explore
reads them from the tag links, so tagging is seen in every project at once.

`annotation_count` is the number of annotations the image has in all of the project's jobs. It
changes only inside the transactions that change a job image's count (saving an annotation set,
deleting an annotated job image), so it is exact, and Explore's "annotated" filter needs no read
of the tasks' job images.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any, Iterable, Iterator

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import NotFoundError
from chalicelib.store import changes as change_log
from chalicelib.store.dynamo import conditional, query_values, store_errors, table_meta
from chalicelib.store.images import Image

BATCH_GET = 100  # DynamoDB's BatchGetItem limit
PARALLEL_READS = 8

class PoolByImage(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_image"
        projection = KeysOnlyProjection()

    image_id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute(range_key=True)


class PoolByDataset(GlobalSecondaryIndex):
    """Sparse: the entries of images that live in a dataset (`datasets/<id>/…`), in every project —
    what deleting that dataset touches, without a read per image."""

    class Meta:
        index_name = "by_dataset"
        projection = IncludeProjection(["annotation_count"])

    dataset_id = UnicodeAttribute(hash_key=True)
    project_id = UnicodeAttribute(range_key=True)


class PoolItem(Model):
    Meta = table_meta("pool_table")

    project_id = UnicodeAttribute(hash_key=True)
    image_id = UnicodeAttribute(range_key=True)
    file_path = UnicodeAttribute()
    status = UnicodeAttribute()
    width = NumberAttribute(null=True)
    height = NumberAttribute(null=True)
    size = NumberAttribute(null=True)
    sha256 = UnicodeAttribute(null=True)
    phash = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    added_by = UnicodeAttribute(null=True)
    added_at = UTCDateTimeAttribute()
    annotation_count = NumberAttribute(null=True)
    dataset_id = UnicodeAttribute(null=True)  # set for images under `datasets/<id>/`

    by_image = PoolByImage()
    by_dataset = PoolByDataset()


@dataclass(frozen=True)
class PoolEntry:
    """A pool member as Explore filters it."""

    image_id: str
    file_path: str
    status: str
    width: int | None
    height: int | None
    size: int | None
    created_at: datetime
    added_at: datetime
    annotation_count: int = 0
    sha256: str | None = None
    phash: str | None = None  # perceptual hash (16 hex digits), for split leaks

    @property
    def annotated(self) -> bool:
        return self.annotation_count > 0

    @property
    def filename(self) -> str:
        return self.file_path.rsplit("/", 1)[-1]


ENTRY_FIELDS = tuple(field.name for field in fields(PoolEntry))


def _num(value) -> int | None:
    return None if value is None else int(value)


def _to_entry(item: PoolItem) -> PoolEntry:
    return _entry_of({name: getattr(item, name) for name in ENTRY_FIELDS})


def _entry_of(values: dict[str, Any]) -> PoolEntry:
    return PoolEntry(**{**values, "width": _num(values["width"]), "height": _num(values["height"]),
                        "size": _num(values["size"]), "annotation_count": int(values["annotation_count"] or 0)})


def _item(project_id: str, image: Image, added_by: str | None, added_at: datetime) -> PoolItem:
    return PoolItem(project_id=project_id, image_id=image.id, file_path=image.file_path, status=image.status,
                    width=image.width, height=image.height, size=image.size, sha256=image.sha256, phash=image.phash,
                    created_at=image.created_at, dataset_id=dataset_of(image.file_path),
                    added_by=added_by, added_at=added_at)


def dataset_of(path: str) -> str | None:
    """The dataset an image lives in (`datasets/<id>/…`), if any."""
    if not path.startswith("datasets/"):
        return None
    dataset_id = path.split("/", 2)[1]
    return dataset_id if dataset_id and path.count("/") >= 2 else None


class PoolRepository:
    def entries(self, project_id: str) -> list[PoolEntry]:
        """The whole pool of a project (strongly consistent, paginated by DynamoDB's 1 MB pages)."""
        with store_errors("reading a project pool"):
            return [_entry_of(values) for values in query_values(PoolItem, project_id, ENTRY_FIELDS)]

    def get_many(self, project_id: str, image_ids: Iterable[str]) -> list[PoolEntry]:
        """The pool entries of `image_ids` that exist (BatchGetItem, 100 keys a request, in parallel)."""
        keys = [(project_id, image) for image in dict.fromkeys(image_ids)]
        chunks = [keys[start : start + BATCH_GET] for start in range(0, len(keys), BATCH_GET)]

        def read(chunk: list[tuple[str, str]]) -> list[PoolEntry]:
            with store_errors("reading a project pool"):
                return [_to_entry(item) for item in PoolItem.batch_get(chunk, consistent_read=True)]

        if len(chunks) <= 1:
            return read(chunks[0]) if chunks else []
        with ThreadPoolExecutor(max_workers=PARALLEL_READS) as pool:
            return [entry for entries in pool.map(read, chunks) for entry in entries]

    def present(self, project_id: str, image_ids: Iterable[str]) -> set[str]:
        """Which of `image_ids` are in the pool (BatchGetItem, keys only)."""
        keys = [(project_id, image) for image in dict.fromkeys(image_ids)]
        if not keys:
            return set()
        with store_errors("reading a project pool"):
            return {item.image_id for item in
                    PoolItem.batch_get(keys, consistent_read=True, attributes_to_get=["image_id"])}

    def add(self, project_id: str, images: list[Image], added_by: str | None) -> None:
        """Put entries for `images` (BatchWriteItem, 25 a request); re-adding an entry only refreshes it."""
        now = utcnow()
        with store_errors("adding images to a pool"):
            with PoolItem.batch_write() as batch:
                for image in images:
                    batch.save(_item(project_id, image, added_by, now))
        change_log.record(change_log.project_stream(project_id), entries=[image.id for image in images])

    def remove(self, project_id: str, image_id: str) -> None:
        with conditional("removing a pool entry", NotFoundError(f"Shared image '{image_id}' is not in the pool")):
            PoolItem(project_id=project_id, image_id=image_id).delete(condition=PoolItem.image_id.exists())
        change_log.record(change_log.project_stream(project_id), entries=[image_id])

    def remove_all(self, project_id: str, image_ids: Iterable[str]) -> None:
        image_ids = list(image_ids)
        with store_errors("removing pool entries"):
            with PoolItem.batch_write() as batch:
                for image in image_ids:
                    batch.delete(PoolItem(project_id=project_id, image_id=image))
        change_log.record(change_log.project_stream(project_id), entries=image_ids)

    def delete_pool(self, project_id: str) -> None:
        with store_errors("deleting a pool"):
            image_ids = [item.image_id for item in PoolItem.query(project_id, attributes_to_get=["image_id"])]
        self.remove_all(project_id, image_ids)

    def of_dataset(self, dataset_id: str) -> Iterator[tuple[str, str, int]]:
        """(project, image, annotation count) of every pool entry of the dataset's images, in every
        project (Query the sparse `by_dataset` index: eventually consistent, as index reads are)."""
        with store_errors("reading a dataset's pool entries"):
            for item in PoolItem.by_dataset.query(dataset_id):
                yield item.project_id, item.image_id, int(item.annotation_count or 0)

    def projects_of_dataset(self, dataset_id: str) -> list[str]:
        """The projects whose pools hold any of the dataset's images: one `by_dataset` Query of one
        item per project (each starting after the last project found), whatever the pools' sizes."""
        found: list[str] = []
        with store_errors("reading a dataset's projects"):
            while True:
                condition = PoolItem.project_id > found[-1] if found else None
                page = list(PoolItem.by_dataset.query(dataset_id, condition, limit=1))
                if not page:
                    return found
                found.append(page[0].project_id)

    def refresh(self, image_id: str, changes: dict[str, Any]) -> int:
        """Copy an image's changed facts (`status`, `width`, `height`, `size`, `sha256`, `phash`) into every pool that
        holds it; returns how many entries were refreshed."""
        with store_errors("finding an image's pools"):
            projects = [item.project_id for item in PoolItem.by_image.query(image_id)]
        actions = [getattr(PoolItem, name).remove() if value is None else getattr(PoolItem, name).set(value)
                   for name, value in changes.items()]
        refreshed = 0
        for project_id in projects:
            with conditional("refreshing a pool entry") as write:  # not done: removed from that pool meanwhile
                PoolItem(project_id=project_id, image_id=image_id).update(
                    actions=actions, condition=PoolItem.image_id.exists())
            refreshed += write.done
            if write.done:
                change_log.record(change_log.project_stream(project_id), entries=[image_id])
        return refreshed
