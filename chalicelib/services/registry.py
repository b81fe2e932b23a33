"""The registry's write side: turn share objects into image records.

`derive` reads one object and works out its facts (the same code for S3 events, registration
and reindexing); `ingest` applies a batch of S3 notifications idempotently; `index` registers or
refreshes a list of keys in bulk (BatchGetItem to see what exists, BatchWriteItem for new records).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from aws_lambda_powertools import Logger

from chalicelib.config import Settings
from chalicelib.errors import ImageRejectedError, PixelpoolError
from chalicelib.services import paths
from chalicelib.services.object_events import ObjectEvent
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import (
    FAILED,
    MISSING,
    READY,
    Facts,
    Image,
    ImageRepository,
    image_id,
    sequencer_order,
)
from chalicelib.store.objects import Bucket, ObjectInfo
from chalicelib.store.pool import PoolRepository

if TYPE_CHECKING:
    from chalicelib.imaging import Spooled

logger = Logger(child=True)
WORKERS = 8
REGISTER, REINDEX = "register", "reindex"


def thumbnail_key(sha256: str) -> str:
    """Thumbnails are content-addressed: identical images share one, and a key never goes stale."""
    return f"thumbnails/{sha256[:2]}/{sha256}.jpg"


@dataclass
class IndexResult:
    """What indexing a list of keys did, in the terms the registration API reports."""

    registered: list[Image] = field(default_factory=list)
    refreshed: list[Image] = field(default_factory=list)
    already_existed: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {"registered": len(self.registered), "refreshed": len(self.refreshed),
                "already_existed": len(self.already_existed), "failed": len(self.failed)}


@dataclass(frozen=True)
class Listed:
    """A key to index, with what a bucket listing said about it (reindex compares ETags)."""

    key: str
    etag: str | None = None


class RegistryService:
    def __init__(self, settings: Settings, images: ImageRepository, links: ImageTagRepository,
                 share: Bucket, cache: Bucket, pools: PoolRepository | None = None) -> None:
        self._settings = settings
        self._pools = pools
        self._images = images
        self._links = links
        self._share = share
        self._cache = cache
        self._pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="derive")

    def derive(self, key: str) -> Facts | None:
        """The facts of the share object at `key` now; None when there is no such object.

        An object under an unsafe key (`paths.unsafe_key_reason`) is recorded `failed` without
        reading its bytes: it exists, but nothing may use its key as a path.
        """
        from chalicelib import imaging  # Pillow: loaded by the functions that decode images only

        unsafe = paths.unsafe_key_reason(key)
        if unsafe:
            info = self._share.head(key)
            return None if info is None else Facts(status=FAILED, reason=unsafe, **_object_facts(info))
        opened = self._share.open(key)
        if opened is None:
            return None
        info, chunks = opened
        spooled = imaging.spool(chunks)
        try:
            return self.facts_of(spooled, info)
        finally:
            spooled.file.close()

    def facts_of(self, spooled: "Spooled", info: ObjectInfo) -> Facts:
        """The facts of an object whose bytes are in hand (`spooled`, at 0) and which S3 describes
        as `info`; its thumbnail is written on the way. The caller closes the spool."""
        from chalicelib import imaging

        base = _object_facts(info)
        try:
            facts = imaging.inspect(spooled, max_pixels=self._settings.max_image_pixels,
                                    thumbnail_size=self._settings.thumbnail_size)
        except ImageRejectedError as exc:
            return Facts(status=FAILED, reason=exc.message, sha256=spooled.sha256 if spooled.size else None, **base)
        thumbnail = thumbnail_key(facts.sha256)
        self._cache.put(thumbnail, facts.thumbnail, "image/jpeg", cache_control="max-age=31536000, immutable")
        return Facts(
            status=READY, format=facts.format, mime_type=facts.mime_type, width=facts.width, height=facts.height,
            frames=facts.frames, sha256=facts.sha256, phash=facts.phash, exif=facts.exif, thumbnail_key=thumbnail,
            **base,
        )

    def register_facts(self, key: str, facts: Facts, actor: str | None) -> tuple[Image | None, bool]:
        """Record facts derived from bytes the caller wrote itself (a dataset import): (the record,
        whether this call wrote it). One UpdateItem, unless the object's own S3 event recorded the
        key first: that record is then kept when it describes these bytes, else written over. The
        event that comes later finds this record current and stops (`apply`). The caller tells the
        registry's index (`changed`)."""
        image = self._images.record_facts(key, facts, actor)
        if image is not None:
            return image, True
        existing = self._images.find_by_keys([key]).get(key)
        if existing is not None and existing.etag == facts.etag and existing.status == facts.status:
            return existing, False
        expected = existing.sequencer if existing is not None else ""
        written = self._images.write_facts(key, facts, sequencer=None, expected_sequencer=expected,
                                           registered_by=actor, record=False)
        if written and existing is not None:
            self._refresh_pools(key, facts)
        return self._images.find_by_keys([key]).get(key), written

    def records_of(self, keys: list[str]) -> dict[str, Image]:
        """The records of share keys that have one, by key."""
        return self._images.find_by_keys(keys) if keys else {}

    def records_by_id(self, image_ids: list[str]) -> dict[str, Image]:
        return self._images.find(image_ids) if image_ids else {}

    def changed(self, image_ids: list[str]) -> None:
        """Tell the registry's index of records written with `register_facts`."""
        self._images.changed(image_ids)

    # S3 notifications -------------------------------------------------------------------------

    def ingest(self, messages: list[tuple[str, list[ObjectEvent]]]) -> list[str]:
        """Apply a batch of S3 notifications, as (message id, its events); returns the ids of failed messages.

        Events are grouped by key and only the newest of each key (highest sequencer) is applied:
        the handler always reads the object as it is now, so older events of the same key add
        nothing. Keys are processed in parallel; a key that fails fails every message naming it.
        """
        failed: set[str] = set()
        newest: dict[str, ObjectEvent] = {}
        messages_of: dict[str, set[str]] = {}
        for message_id, events in messages:
            for event in events:
                if not self._wanted(event):
                    continue
                messages_of.setdefault(event.key, set()).add(message_id)
                current = newest.get(event.key)
                if current is None or _order(event) > _order(current):
                    newest[event.key] = event
        # One BatchGetItem for the whole batch instead of a read per key.
        stored = self._images.find(image_id(key) for key, event in newest.items() if event.created)
        # The records the batch touched are told to the registry's index once, after the batch
        # (a batch that dies before is delivered again, and a redelivered event records itself).
        touched: list[str] = []
        outcomes = list(self._pool.map(lambda event: self._apply_safely(event, stored, touched), newest.values()))
        self._images.changed(touched)
        for event, ok in zip(newest.values(), outcomes):
            if not ok:
                failed |= messages_of[event.key]
        return sorted(failed)

    def _wanted(self, event: ObjectEvent) -> bool:
        if event.bucket != self._share.name:
            logger.info("event for another bucket ignored", extra={"bucket": event.bucket})
            return False
        return (event.created or event.removed) and paths.is_image_key(event.key)

    def _apply_safely(self, event: ObjectEvent, stored: dict[str, Image], touched: list[str]) -> bool:
        try:
            self.apply(event, stored.get(image_id(event.key)), touched)
            return True
        except Exception:
            logger.exception("ingesting an object failed", extra={"key": event.key, "event": event.event_name})
            return False

    def apply(self, event: ObjectEvent, stored: Image | None, touched: list[str] | None = None) -> str:
        """Apply one object event, given the record as read before; returns what happened
        ('written', 'stale', 'missing', 'skipped'). The registry's index is told of the record at
        once, or by the caller for a whole batch when it passes `touched` (ids are added to it)."""
        if event.removed:
            if self._share.exists(event.key):
                return "skipped"  # re-created since; its own event describes it
            return self._missing(event, touched)
        if stored is not None and stored.sequencer >= sequencer_order(event.sequencer):
            if stored.sequencer == sequencer_order(event.sequencer):
                self._redelivered(stored, touched)
            return "stale"
        if _current(stored, event):
            # Written from these very bytes by whoever put them (a dataset import derives what it
            # extracts): the event only takes its place in the key's order, nothing is read again.
            if self._images.adopt_sequencer(event.key, event.sequencer, event.etag):
                return "current"
            return "stale"
        facts = self.derive(event.key)
        if facts is None:
            return self._missing(event, touched)
        written = self._images.write_facts(event.key, facts, sequencer=event.sequencer, record=touched is None)
        if touched is not None:
            touched.append(image_id(event.key))
        logger.info("object indexed", extra={"key": event.key, "status": facts.status, "written": written})
        if written and stored is not None:
            self._refresh_pools(event.key, facts)
        return "written" if written else "stale"

    def _missing(self, event: ObjectEvent, touched: list[str] | None = None) -> str:
        marked = self._images.mark_missing(event.key, event.sequencer, record=touched is None)
        if touched is not None:
            touched.append(image_id(event.key))
        if not marked:
            return "stale"
        if self._pools is not None:
            self._pools.refresh(image_id(event.key), {"status": MISSING})
        return "missing"

    def _redelivered(self, stored: Image, touched: list[str] | None) -> None:
        """This very event again (SQS delivers at least once): its first attempt wrote the record
        and may have died before what follows a write, so that is done again (both are idempotent)."""
        if touched is None:
            self._images.changed([stored.id])
        else:
            touched.append(stored.id)
        if self._pools is not None:
            self._pools.refresh(stored.id, {"status": stored.status, "width": stored.width, "height": stored.height,
                                            "size": stored.size, "sha256": stored.sha256, "phash": stored.phash})

    def _refresh_pools(self, key: str, facts: Facts) -> None:
        """Projects keep copies of the facts they filter on; a replaced object updates them."""
        if self._pools is not None:
            self._pools.refresh(image_id(key), {"status": facts.status, "width": facts.width,
                                                "height": facts.height, "size": facts.size,
                                                "sha256": facts.sha256, "phash": facts.phash})

    # Registration and reindexing ----------------------------------------------------------------

    def index(self, listed: Iterable[Listed], mode: str, actor: str | None) -> IndexResult:
        """Register (`register`) or refresh (`reindex`) the given keys, in bulk.

        register: keys with a record are reported as already existing (a failed record as failed);
        reindex: keys whose record is absent, missing, failed or has another ETag are derived again.
        """
        entries = list({entry.key: entry for entry in listed}.values())
        result = IndexResult()
        existing = self._images.find_by_keys(entry.key for entry in entries)
        todo: list[tuple[Listed, Image | None]] = []
        for entry in entries:
            if not paths.is_image_key(entry.key):
                result.failed.append({"file_path": entry.key, "reason": "not an image file type"})
                continue
            record = existing.get(entry.key)
            if record is None or _stale(record, entry, mode):
                todo.append((entry, record))
            elif record.status == FAILED:
                result.failed.append({"file_path": entry.key, "reason": record.reason or "failed"})
            else:
                result.already_existed.append(entry.key)
        derived = list(self._pool.map(lambda item: self._derive_safely(item[0].key), todo))
        fresh = []
        for (entry, record), (facts, problem) in zip(todo, derived):
            if facts is None:
                result.failed.append({"file_path": entry.key, "reason": problem or "not found in the share"})
            elif record is None:
                fresh.append((entry.key, facts))
            elif self._images.write_facts(entry.key, facts, sequencer=None, expected_sequencer=record.sequencer,
                                          registered_by=actor):
                self._refresh_pools(entry.key, facts)
                result.refreshed.append(self._images.get(record.id))
            else:
                # The ingest handler wrote this record meanwhile (its S3 notification raced this
                # call): the record is current, as for a key that already had one.
                result.already_existed.append(entry.key)
        if fresh:
            tags = self._links_of([image_id(key) for key, _ in fresh]) if mode == REINDEX else None
            result.registered = self._images.put_new(fresh, actor, tags)
        for image in result.registered + result.refreshed:
            if image.status == FAILED:
                result.failed.append({"file_path": image.file_path, "reason": image.reason or "failed"})
        result.registered = [image for image in result.registered if image.status != FAILED]
        result.refreshed = [image for image in result.refreshed if image.status != FAILED]
        return result

    def _derive_safely(self, key: str) -> tuple[Facts | None, str | None]:
        try:
            return self.derive(key), None
        except PixelpoolError as exc:
            logger.warning("reading an object failed", extra={"key": key, "error": exc.message})
            return None, f"could not read the object: {exc.message}"

    def _links_of(self, image_ids: list[str]) -> dict[str, set[str]]:
        """The tags linked to each image: a record rebuilt after the registry was wiped gets them back."""
        return {image: set(tags) for image, tags in zip(image_ids, self._pool.map(self._links.tags_of, image_ids))}

    def mark_gone(self, prefix: str, present: set[str]) -> int:
        """Mark `missing` every record under `prefix` whose key a bucket walk did not find."""
        gone = [entry.id for entry in self._images.catalog(prefix)
                if entry.file_path not in present and entry.status != MISSING]
        return self._images.mark_missing_unless_seen(gone)


def _object_facts(info: ObjectInfo) -> dict:
    return {"size": info.size, "etag": info.etag, "version_id": info.version_id,
            "object_modified_at": info.last_modified}


def _current(stored: Image | None, event: ObjectEvent) -> bool:
    """Whether `stored` already describes the bytes `event` announces (same ETag, same size)."""
    return (stored is not None and event.etag is not None and stored.status in (READY, FAILED)
            and stored.etag is not None and stored.etag.strip('"') == event.etag.strip('"')
            and (event.size is None or stored.size == event.size))


def _order(event: ObjectEvent) -> tuple[str, int]:
    # Same sequencer: a removal and a creation cannot share one; prefer the later record.
    return sequencer_order(event.sequencer), 1 if event.removed else 0


def _stale(record: Image, entry: Listed, mode: str) -> bool:
    if record.status == MISSING:
        return True
    if record.status != FAILED and paths.unsafe_key_reason(record.file_path):
        return True  # registered before keys were checked: recorded failed now
    if mode != REINDEX:
        return False
    return record.status == FAILED or (entry.etag is not None and entry.etag != record.etag)
