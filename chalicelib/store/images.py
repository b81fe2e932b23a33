"""The image registry: one item per share object, keyed by an id derived from its key.

An image's identity is its S3 location, so its id is a UUIDv5 of the key: the same object always
maps to the same item, registration needs no uniqueness guard, and a registry rebuilt from the
bucket gets back the same ids (tag links, pools and annotations keep pointing at them).

Access patterns (docs/data-model.md): GetItem/BatchGetItem by id; the sparse-free `catalog` index
(`shard`, `file_path`) with the few attributes that filters, duplicate and near-duplicate search
need, read shard by shard (8 shards so ingest writes spread over partitions); `masks`
(`mask_of`, `file_path`) for an image's masks.
"""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterable, TypeVar

from pynamodb.attributes import (
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UnicodeSetAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.condition import Condition
from pynamodb.indexes import IncludeProjection, GlobalSecondaryIndex, KeysOnlyProjection
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store import changes as change_log
from chalicelib.store.dynamo import ItemKeys, conditional, entity, store_errors, table_meta, warm_client

SHARDS = 8
SEQUENCER_WIDTH = 32
ID_NAMESPACE = uuid.UUID("6b1f3c0e-8a57-4f7e-9d1a-3c2b7e0f5a11")
CATALOG_FIELDS = ("status", "sha256", "phash", "width", "height", "size", "tag_ids", "mask_of", "created_at")

READY, FAILED, MISSING = "ready", "failed", "missing"
# The catalog's shards are read on threads kept for the process, with the client built first
# (store/dynamo.warm_client): otherwise each thread may load a botocore session of its own.
_SHARD_READERS = ThreadPoolExecutor(max_workers=SHARDS, thread_name_prefix="catalog")


def image_id(key: str) -> str:
    """The registry id of the share object at `key` (stable across rebuilds)."""
    return str(uuid.uuid5(ID_NAMESPACE, key))


def shard_of(image_id_: str) -> str:
    return f"{int(image_id_[:8], 16) % SHARDS:02d}"


def sequencer_order(sequencer: str | None) -> str:
    """S3 sequencers compare as hex of different lengths: left-pad with zeros, then compare strings."""
    return (sequencer or "").upper().rjust(SEQUENCER_WIDTH, "0")


class Catalog(GlobalSecondaryIndex):
    class Meta:
        index_name = "catalog"
        projection = IncludeProjection(list(CATALOG_FIELDS))

    shard = UnicodeAttribute(hash_key=True)
    file_path = UnicodeAttribute(range_key=True)


class Masks(GlobalSecondaryIndex):
    class Meta:
        index_name = "masks"
        projection = KeysOnlyProjection()

    mask_of = UnicodeAttribute(hash_key=True)
    file_path = UnicodeAttribute(range_key=True)


class ImageItem(Model):
    Meta = table_meta("images_table")

    id = UnicodeAttribute(hash_key=True)
    shard = UnicodeAttribute()
    file_path = UnicodeAttribute()
    filename = UnicodeAttribute()
    folder = UnicodeAttribute()
    status = UnicodeAttribute()
    reason = UnicodeAttribute(null=True)
    size = NumberAttribute(null=True)
    etag = UnicodeAttribute(null=True)
    version_id = UnicodeAttribute(null=True)
    format = UnicodeAttribute(null=True)
    mime_type = UnicodeAttribute(null=True)
    width = NumberAttribute(null=True)
    height = NumberAttribute(null=True)
    frames = NumberAttribute(null=True)
    sha256 = UnicodeAttribute(null=True)
    phash = UnicodeAttribute(null=True)
    exif = MapAttribute(null=True)
    thumbnail_key = UnicodeAttribute(null=True)
    sequencer = UnicodeAttribute(default="")
    object_modified_at = UTCDateTimeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()
    registered_by = UnicodeAttribute(null=True)
    metadata = MapAttribute(null=True)
    metadata_rev = NumberAttribute(default=0)
    tag_ids = UnicodeSetAttribute(null=True)
    mask_of = UnicodeAttribute(null=True)
    mask_category = UnicodeAttribute(null=True)
    # A caption for image-text training: {text, tags, source: user|prediction, updated_by,
    # updated_at, and for a promoted prediction analysis_id, prediction_id, model_name, model_version}.
    caption = MapAttribute(null=True)
    # The image's completed ML analyses: what Explore's prediction conditions read (with the tags,
    # in one projected BatchGetItem), set when an analysis completes.
    analysis_ids = UnicodeSetAttribute(null=True)

    catalog = Catalog()
    masks = Masks()


@dataclass(frozen=True)
class Facts:
    """What the share object itself says about an image: re-derivable at any time from S3."""

    status: str
    size: int | None = None
    etag: str | None = None
    version_id: str | None = None
    object_modified_at: datetime | None = None
    reason: str | None = None
    format: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None
    frames: int | None = None
    sha256: str | None = None
    phash: str | None = None
    exif: dict | None = None
    thumbnail_key: str | None = None


FACT_FIELDS = tuple(Facts.__dataclass_fields__)


@dataclass(frozen=True)
class Image:
    id: str
    file_path: str
    filename: str
    folder: str
    status: str
    reason: str | None
    size: int | None
    etag: str | None
    format: str | None
    mime_type: str | None
    width: int | None
    height: int | None
    frames: int | None
    sha256: str | None
    phash: str | None
    exif: dict | None
    thumbnail_key: str | None
    object_modified_at: datetime | None
    created_at: datetime
    updated_at: datetime
    registered_by: str | None
    metadata: dict
    tag_ids: tuple[str, ...]
    mask_of: str | None
    mask_category: str | None
    sequencer: str = ""
    metadata_rev: int = 0
    caption: dict | None = None
    analysis_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class CatalogEntry:
    """An image as the catalog index sees it: enough to filter, group and compare."""

    id: str
    file_path: str
    status: str
    sha256: str | None
    phash: str | None
    width: int | None
    height: int | None
    size: int | None
    tag_ids: frozenset[str] = field(default_factory=frozenset)
    mask_of: str | None = None
    created_at: datetime | None = None



T = TypeVar("T")


@dataclass(frozen=True)
class SharedFacts:
    """An image's facts that every project holding it shares (store/changes.py: the tag stream)."""

    tag_ids: frozenset[str]
    caption: str | None
    analysis_ids: frozenset[str]


def _caption_text(caption) -> str | None:
    if caption is None:
        return None
    text = caption["text"] if isinstance(caption, dict) else caption.as_dict().get("text")
    return text or None


def _to_image(item: ImageItem) -> Image:
    return entity(Image, item)

def _to_entry(item: ImageItem) -> CatalogEntry:
    return entity(CatalogEntry, item)

def _location(key: str) -> dict[str, str]:
    folder, _, filename = key.rpartition("/")
    image = image_id(key)
    return {"id": image, "shard": shard_of(image), "file_path": key, "folder": folder, "filename": filename}


def _new_item(key: str, facts: Facts, registered_by: str | None, tag_ids: set[str] | None) -> ImageItem:
    now = utcnow()
    values = {name: getattr(facts, name) for name in FACT_FIELDS}
    return ImageItem(
        **_location(key),
        **values,
        sequencer="",
        created_at=facts.object_modified_at or now,
        updated_at=now,
        registered_by=registered_by,
        metadata_rev=0,
        tag_ids=tag_ids or None,
    )


def _recorded(image_ids: list[str]) -> None:
    """Tell the registry's index (stream `R`) which records a write touched. Recorded whether or not
    a conditional write won: a redelivered event whose first attempt wrote and then failed records
    it again, and a record naming an unchanged image only makes readers re-read it."""
    if image_ids:
        change_log.record(change_log.REGISTRY_STREAM, entries=image_ids)


class ImageRepository:
    def get(self, image_id_: str) -> Image:
        try:
            with store_errors("reading an image"):
                return _to_image(ImageItem.get(image_id_))
        except DoesNotExist as exc:
            raise NotFoundError(f"Shared image '{image_id_}' not found") from exc

    def find(self, image_ids: Iterable[str]) -> dict[str, Image]:
        """The images that exist among `image_ids` (BatchGetItem, 100 keys a request)."""
        keys = list(dict.fromkeys(image_ids))
        if not keys:
            return {}
        with store_errors("reading images"):
            return {item.id: _to_image(item) for item in ImageItem.batch_get(keys)}

    @staticmethod
    def keys(image_ids: Iterable[str]) -> ItemKeys:
        """These images' keys, to read in the same request as others (`dynamo.batch_get_tables`)."""
        return ItemKeys(ImageItem, [{"id": image} for image in dict.fromkeys(image_ids)])

    @staticmethod
    def from_raw(items: list[dict]) -> list[Image]:
        return [_to_image(ImageItem.from_raw_data(raw)) for raw in items]

    def tag_sets(self, image_ids: Iterable[str]) -> dict[str, frozenset[str]]:
        """The tag ids of each existing image among `image_ids`."""
        return self._projected(image_ids, ["tag_ids"], "images' tags", lambda item: frozenset(item.tag_ids or ()))

    def shared_facts(self, image_ids: Iterable[str]) -> dict[str, "SharedFacts"]:
        """What every project holding these images filters on beyond the pool entry — tags, caption,
        completed analyses — for each existing image."""
        return self._projected(image_ids, ["tag_ids", "caption", "analysis_ids"],
                               "images' tags, captions and analyses",
                               lambda item: SharedFacts(frozenset(item.tag_ids or ()), _caption_text(item.caption),
                                                        frozenset(item.analysis_ids or ())))

    @staticmethod
    def _projected(image_ids: Iterable[str], attributes: list[str], what: str,
                   shape: Callable[[ImageItem], T]) -> dict[str, T]:
        """`shape` of each existing image's record read with only `attributes` (BatchGetItem,
        consistent, 100 keys a request, in parallel)."""
        keys = list(dict.fromkeys(image_ids))
        chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]

        def read(chunk: list[str]) -> dict[str, T]:
            with store_errors(f"reading {what}"):
                return {item.id: shape(item) for item in
                        ImageItem.batch_get(chunk, consistent_read=True, attributes_to_get=["id", *attributes])}

        found: dict[str, T] = {}
        with ThreadPoolExecutor(max_workers=8) as pool:
            for part in pool.map(read, chunks):
                found.update(part)
        return found

    def set_caption(self, image_id_: str, caption: dict | None, *, unless_by_a_person: bool = False) -> Image:
        """Set (or with None remove) the image's caption; one UpdateItem whose answer is the image.
        `unless_by_a_person`: only where there is none or it came from a prediction (ConflictError
        otherwise) — a promoted caption never replaces one a person wrote. Every project's Explore
        index hears of it through the tag stream."""
        item = ImageItem(id=image_id_)
        actions = [ImageItem.caption.set(caption) if caption is not None else ImageItem.caption.remove(),
                   ImageItem.updated_at.set(utcnow())]
        condition = ImageItem.id.exists()
        if unless_by_a_person:
            condition &= ImageItem.caption.does_not_exist() | (ImageItem.caption["source"] == "prediction")
        if not self._conditional_update(item, actions, condition):
            self.get(image_id_)  # 404 when the image is gone
            raise ConflictError(f"Shared image '{image_id_}' has a caption written by a person")
        change_log.record(change_log.TAGS_STREAM, tagged=[image_id_])
        return _to_image(item)

    def note_analyses(self, by_image: dict[str, set[str]]) -> int:
        """Note completed analyses on their images, where Explore's prediction conditions and promote
        find them (one UpdateItem an image, ADD: idempotent; an image whose record is gone is
        skipped), recorded in the tag stream every project's index reads; returns how many took them."""
        noted = [image for image, ids in by_image.items()
                 if self._conditional_update(ImageItem(id=image), [ImageItem.analysis_ids.add(ids)],
                                             ImageItem.id.exists())]
        change_log.record(change_log.TAGS_STREAM, tagged=noted)
        return len(noted)

    def find_by_keys(self, keys: Iterable[str]) -> dict[str, Image]:
        """The registered images among share `keys`, by key."""
        found = self.find(image_id(key) for key in keys)
        return {image.file_path: image for image in found.values()}

    def write_facts(self, key: str, facts: Facts, *, sequencer: str | None, expected_sequencer: str = "",
                    registered_by: str | None = None, record: bool = True) -> bool:
        """Record what the object at `key` is now; True if written.

        With an event's `sequencer`, the write happens unless a newer event already won. Without
        one (registration, reindex), it happens only if the record still carries
        `expected_sequencer`, i.e. no event changed it since it was read. User-owned fields
        (metadata, tags, mask link, creator) are left as they are, so a re-upload or a reindex
        never loses them.
        """
        order = sequencer_order(sequencer) if sequencer is not None else expected_sequencer
        if sequencer is not None:
            condition = ImageItem.id.does_not_exist() | (ImageItem.sequencer < order)
        else:
            condition = ImageItem.id.does_not_exist() | (ImageItem.sequencer == expected_sequencer)
        written = self._write_facts(key, facts, order, condition, registered_by) is not None
        if record:  # else the caller records a whole batch with `changed`
            _recorded([image_id(key)])
        return written

    def _write_facts(self, key: str, facts: Facts, order: str, condition: Condition,
                     registered_by: str | None) -> ImageItem | None:
        """The conditional UpdateItem of `write_facts`: the item as written (its answer), or None."""
        location = _location(key)
        now = utcnow()
        actions = [getattr(ImageItem, name).set(value) for name, value in location.items() if name != "id"]
        for name in FACT_FIELDS:
            value = getattr(facts, name)
            attribute = getattr(ImageItem, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        actions += [
            ImageItem.sequencer.set(order),
            ImageItem.updated_at.set(now),
            ImageItem.created_at.set(ImageItem.created_at | (facts.object_modified_at or now)),
            ImageItem.metadata_rev.set(ImageItem.metadata_rev | 0),
        ]
        if registered_by:
            actions.append(ImageItem.registered_by.set(ImageItem.registered_by | registered_by))
        item = ImageItem(id=location["id"])
        return item if self._conditional_update(item, actions, condition) else None

    def record_facts(self, key: str, facts: Facts, registered_by: str | None) -> Image | None:
        """Write what the object at `key` is, as its writer knows it, unless an S3 event already
        recorded the key (then None): one UpdateItem, whose answer is the record written."""
        condition = ImageItem.id.does_not_exist() | (ImageItem.sequencer == "")
        item = self._write_facts(key, facts, "", condition, registered_by)
        return _to_image(item) if item is not None else None

    def adopt_sequencer(self, key: str, sequencer: str, etag: str) -> bool:
        """Give a record written without an event (`sequencer` "") or by an older event the order of
        an event for the same bytes, unless a newer event already won or the bytes changed."""
        order = sequencer_order(sequencer)
        item = ImageItem(id=image_id(key))
        condition = (ImageItem.id.exists() & (ImageItem.sequencer < order)
                     & (ImageItem.etag == etag.strip('"')))
        return self._conditional_update(item, [ImageItem.sequencer.set(order)], condition)

    def mark_missing(self, key: str, sequencer: str, record: bool = True) -> bool:
        """Mark the record of a removed object `missing` (kept, never dropped), unless a newer event won."""
        order = sequencer_order(sequencer)
        item = ImageItem(id=image_id(key))
        actions = [ImageItem.status.set(MISSING), ImageItem.reason.set("object removed from the share"),
                   ImageItem.sequencer.set(order), ImageItem.updated_at.set(utcnow())]
        condition = ImageItem.id.exists() & (ImageItem.sequencer < order)
        written = self._conditional_update(item, actions, condition)
        if record:
            _recorded([item.id])
        return written

    def mark_missing_unless_seen(self, image_ids: Iterable[str]) -> int:
        """Mark records `missing` whose object a bucket walk did not find; returns how many changed."""
        changed: list[str] = []
        for image in image_ids:
            item = ImageItem(id=image)
            actions = [ImageItem.status.set(MISSING), ImageItem.reason.set("object not found in the share"),
                       ImageItem.updated_at.set(utcnow())]
            if self._conditional_update(item, actions, ImageItem.id.exists() & (ImageItem.status != MISSING)):
                changed.append(image)
        _recorded(changed)
        return len(changed)

    def put_new(self, records: list[tuple[str, Facts]], registered_by: str | None,
                tag_ids: dict[str, set[str]] | None = None) -> list[Image]:
        """Write brand-new records for (key, facts) with BatchWriteItem (25 a request, unprocessed
        items retried); `tag_ids` gives a rebuilt record its tags back. Returns the records written."""
        items = [_new_item(key, facts, registered_by, (tag_ids or {}).get(image_id(key))) for key, facts in records]
        with store_errors("registering images"):
            with ImageItem.batch_write() as batch:
                for item in items:
                    batch.save(item)
        _recorded([item.id for item in items])
        return [_to_image(item) for item in items]

    def changed(self, image_ids: list[str]) -> None:
        """Record that these records changed (a batch of events, written with `record=False`)."""
        _recorded(image_ids)

    def catalog_entries(self, image_ids: Iterable[str]) -> dict[str, CatalogEntry]:
        """The catalog view of each existing image among `image_ids` (BatchGetItem projected to the
        catalog's fields, consistent, 100 keys a request, in parallel)."""
        keys = list(dict.fromkeys(image_ids))
        chunks = [keys[start : start + 100] for start in range(0, len(keys), 100)]
        wanted = ["id", "file_path", *CATALOG_FIELDS]

        def read(chunk: list[str]) -> list[CatalogEntry]:
            with store_errors("reading images"):
                return [_to_entry(item) for item in ImageItem.batch_get(chunk, consistent_read=True,
                                                                        attributes_to_get=wanted)]

        with ThreadPoolExecutor(max_workers=8) as pool:
            return {entry.id: entry for entries in pool.map(read, chunks) for entry in entries}

    def catalog(self, prefix: str = "") -> list[CatalogEntry]:
        """Every image under `prefix` from the catalog index: one paginated Query per shard, in parallel."""

        def read(shard: str) -> list[CatalogEntry]:
            condition = ImageItem.file_path.startswith(prefix) if prefix else None
            with store_errors("reading the catalog"):
                return [_to_entry(item) for item in ImageItem.catalog.query(shard, condition)]

        warm_client(ImageItem)
        shards = list(_SHARD_READERS.map(read, (f"{n:02d}" for n in range(SHARDS))))
        return [entry for entries in shards for entry in entries]

    def delete_records(self, image_ids: list[str]) -> int:
        """Delete records by id (BatchWriteItem, 25 a request) and tell the registry's index; returns how many."""
        with store_errors("deleting image records"):
            with ImageItem.batch_write() as batch:
                for image in image_ids:
                    batch.delete(ImageItem(id=image))
        _recorded(image_ids)
        return len(image_ids)

    def update_metadata(self, image_id_: str, metadata: dict, expected_rev: int) -> Image:
        """Replace the custom metadata if nobody changed it since `expected_rev` (409 otherwise).
        One UpdateItem, whose answer (every attribute, as written) is the image returned."""
        item = ImageItem(id=image_id_)
        actions = [ImageItem.metadata.set(metadata), ImageItem.metadata_rev.add(1), ImageItem.updated_at.set(utcnow())]
        condition = ImageItem.id.exists() & (ImageItem.metadata_rev == expected_rev)
        if not self._conditional_update(item, actions, condition):
            raise ConflictError(f"Shared image '{image_id_}' metadata changed meanwhile; retry")
        return _to_image(item)

    def set_mask(self, image_id_: str, source_id: str | None, category: str | None) -> Image:
        item = ImageItem(id=image_id_)
        if source_id is None:
            actions = [ImageItem.mask_of.remove(), ImageItem.mask_category.remove()]
        else:
            actions = [ImageItem.mask_of.set(source_id), ImageItem.mask_category.set(category)]
        actions.append(ImageItem.updated_at.set(utcnow()))
        if not self._conditional_update(item, actions, ImageItem.id.exists()):
            raise NotFoundError(f"Shared image '{image_id_}' not found")
        return self.get(image_id_)

    def masks_of(self, image_id_: str) -> list[str]:
        with store_errors("reading masks"):
            return [item.id for item in ImageItem.masks.query(image_id_)]

    @staticmethod
    def _conditional_update(item: ImageItem, actions: list, condition: Condition) -> bool:
        with conditional(f"updating image {item.id}") as write:
            item.update(actions=actions, condition=condition)
        return write.done
