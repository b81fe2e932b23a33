"""In-memory indexes kept current from the change log and started from snapshots in S3.

DynamoDB stays the only source of truth; an index is a cache of it that can always be rebuilt.
`KeptIndexes` holds one index per scope (a project's Explore index, the registry's index) and
brings it up to date on every call: it reads the change-log records after the index's watermarks
(one consistent Query per stream, in parallel) and hands the fresh ones to `_apply`, which re-reads
the items they name from their tables. A 2xx write is therefore visible to the next call on any
API instance (store/changes.py says how writers record).

A cold instance starts a scope's index from its snapshot (CacheBucket, `explore-index/<scope>.sqlite`:
the SQLite database image with its watermarks) when there is a usable one — same layout, younger
than the change log's retention — and from DynamoDB (`_build`) otherwise, then writes one. The
compactor (`compact`, on a schedule) keeps the snapshots of changed scopes current, so change
records can expire.
"""
from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from aws_lambda_powertools import Logger

from chalicelib.store.changes import RETENTION, TAGS_STREAM, Change, ChangeLog, stamp
from chalicelib.store.objects import Bucket
from chalicelib.store.tags import Tag, TagRepository

if TYPE_CHECKING:
    from chalicelib.services.trash import Trash

logger = Logger(child=True)

# Records commit in about the order of their stamps: each call re-reads this far behind its
# watermark, so a record stamped earlier that committed later is still found (and applied once).
MARGIN = timedelta(seconds=10)
# How far a reader's clock may run ahead of the writers' (NTP keeps Lambda's within milliseconds):
# a read settles the margin behind its own start less this.
CLOCK_SKEW = timedelta(seconds=5)
# A snapshot older than this behind the tag stream is written again by the compactor.
TAGS_REPLAY = timedelta(hours=1)
# The change-log Queries of a call run side by side on these threads (kept: starting threads
# per call cost more than the Queries' own work).
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="change-log")


class SnapshotIndex(Protocol):
    def snapshot(self, watermarks: dict[str, str]) -> bytes: ...

    def meta(self) -> dict[str, str]: ...


I = TypeVar("I", bound=SnapshotIndex)


@dataclass
class Held(Generic[I]):
    index: I
    watermarks: dict[str, str]
    applied: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved: dict[str, str] | None = None  # the watermarks of the snapshot it came from (or last wrote)
    read_at: str | None = None  # when the last catch-up started reading (the reader's clock)


def behind(at: str, margin: timedelta) -> str:
    moment = datetime.strptime(at.split("#", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ") - margin
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _read_from(held: Held, stream: str) -> str:
    """Where a catch-up reads `stream` from: MARGIN behind the watermark, where a record stamped
    earlier may still commit — unless the last catch-up started more than MARGIN (and CLOCK_SKEW)
    after that: every record stamped that long before it had committed and was read then. An index whose stream has been
    quiet for a while reads only what is newer than its watermark (a busy stream's last ten seconds,
    thousands of records after a pipeline finalized its analyses, are not re-read on every call)."""
    watermark = held.watermarks[stream]
    start = behind(watermark, MARGIN)
    if held.read_at is not None:
        start = max(start, min(watermark, behind(held.read_at, MARGIN + CLOCK_SKEW)))
    return start


def snapshot_key(scope: str) -> str:
    return f"explore-index/{scope}.sqlite"


class TagList:
    """Every tag by id, as of the last change applied: read once per instance, and again after the
    tag stream records a tag created, changed or deleted (any index's catch-up drops it)."""

    def __init__(self, tags: TagRepository) -> None:
        self._tags = tags
        self._cached: dict[str, Tag] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict[str, Tag]:
        with self._lock:
            cached = self._cached
        if cached is None:
            cached = {tag.id: tag for tag in self._tags.list()}
            with self._lock:
                self._cached = cached
        return cached

    def drop(self) -> None:
        with self._lock:
            self._cached = None


class KeptIndexes(ABC, Generic[I]):
    """Per-scope indexes brought up to date on every call. A subclass says which streams feed a
    scope (its own first, then the tag stream), how to open a snapshot, how to build the index from
    DynamoDB and how to apply fresh records."""

    layout: str

    def __init__(self, log: ChangeLog, snapshots: Bucket | None, tag_list: TagList | None = None,
                 trash: "Trash | None" = None) -> None:
        self._tag_list = tag_list or TagList(TagRepository())
        self._trash = trash
        self._log = log
        self._snapshots = snapshots
        self._held: dict[str, Held[I]] = {}
        self._lock = threading.Lock()
        self.snapshots_written = 0

    # What a kind of index defines -----------------------------------------------------------------

    @abstractmethod
    def _own_stream(self, scope: str) -> str:
        """The stream that records this scope's own changes (the tag stream is read as well)."""

    @abstractmethod
    def _open(self, snapshot: bytes) -> I:
        """An index from a snapshot's bytes."""

    @abstractmethod
    def _build_index(self, scope: str) -> I:
        """The scope's index read from DynamoDB, the source of truth."""

    @abstractmethod
    def _apply(self, scope: str, index: I, records: list[Change]) -> None:
        """Bring the index up to date with fresh records (re-reading the items they name)."""

    def hidden(self) -> tuple[str, ...]:
        """The path prefixes of deleted datasets, current as of the last catch-up (services/trash.py)."""
        return self._trash.prefixes() if self._trash is not None else ()

    def tag_index(self) -> dict[str, Tag]:
        """Every tag by id (names and colours of a page's tags), current as of the last catch-up."""
        return self._tag_list.get()

    # Keeping it current ---------------------------------------------------------------------------

    def _streams(self, scope: str) -> list[str]:
        return [self._own_stream(scope), TAGS_STREAM]

    def current(self, scope: str) -> I:
        """The scope's index with every change recorded so far applied."""
        with self._lock:
            held = self._held.get(scope)
        if held is None:
            held = self._load(scope) or self._build(scope)
            with self._lock:
                held = self._held.setdefault(scope, held)
        with held.lock:
            self._catch_up(scope, held)
            if held.saved is None:  # built from DynamoDB: the next cold instance starts from this
                self._save(scope, held)
        return held.index

    def held(self, scope: str) -> I | None:
        """The scope's index as this instance last brought it up to date, if it holds one."""
        with self._lock:
            held = self._held.get(scope)
        return None if held is None else held.index

    def forget(self, scope: str | None = None) -> None:
        with self._lock:
            if scope is None:
                self._held.clear()
            else:
                self._held.pop(scope, None)

    def purge(self, scope: str) -> None:
        """A deleted scope's index leaves this instance and its snapshot the cache bucket (its
        change records expire)."""
        self.forget(scope)
        if self._snapshots is not None:
            self._snapshots.delete(snapshot_key(scope))

    def rebuild(self, scope: str) -> I:
        """Build the scope's index again from DynamoDB, keep it and write its snapshot."""
        held = self._build(scope)
        with self._lock:
            self._held[scope] = held
        with held.lock:
            self._catch_up(scope, held)
            self._save(scope, held)
        return held.index

    def compact(self, scope: str, force: bool = False) -> bool:
        """Bring the scope's snapshot up to date: written when changes were applied after the
        snapshot it started from, or when that one is half-way to the change log's retention
        (records a snapshot would need must never expire first). Returns whether it wrote one."""
        written = self.snapshots_written
        self.current(scope)  # writes one itself when it had to build the index from DynamoDB
        with self._lock:
            held = self._held[scope]
        with held.lock:
            old = behind(stamp(), RETENTION / 2)
            if force or held.saved is None or held.saved != held.watermarks or min(held.saved.values()) <= old:
                self._save(scope, held)
        return self.snapshots_written > written

    def compact_if_behind(self, scope: str) -> bool:
        """`compact` when the snapshot in S3 is behind (whatever this instance wrote before)."""
        return False if self._snapshot_current(scope) else self.compact(scope, force=True)

    def _snapshot_current(self, scope: str) -> bool:
        """Whether the scope's snapshot already holds every record of its stream and is young
        enough (decided from the snapshot's metadata and the newest record: no download)."""
        if self._snapshots is None:
            return True
        metadata = self._snapshots.metadata(snapshot_key(scope))
        if metadata is None or metadata.get("layout") != self.layout:
            return False  # none, or of another layout (a deploy changed it): build it here, not in a request
        saved, saved_tags = metadata.get("watermark-project", ""), metadata.get("watermark-tags", "")
        if min(saved, saved_tags) <= behind(stamp(), RETENTION / 2):
            return False
        latest = self._log.latest(self._own_stream(scope))
        if latest is not None and latest > saved:
            return False
        # Tag records are global: whether one touched this scope's images is only known by
        # applying it, so a cold instance replays at most TAGS_REPLAY of them (plus one period).
        if saved_tags <= behind(stamp(), TAGS_REPLAY):
            latest_tags = self._log.latest(TAGS_STREAM)
            return latest_tags is None or latest_tags <= saved_tags
        return True

    def _save(self, scope: str, held: Held[I]) -> None:
        if self._snapshots is None:
            return
        data = held.index.snapshot(held.watermarks)
        self._snapshots.put(snapshot_key(scope), data, "application/vnd.sqlite3", metadata={
            "layout": self.layout, "watermark-project": held.watermarks[self._own_stream(scope)],
            "watermark-tags": held.watermarks[TAGS_STREAM]})
        held.saved = dict(held.watermarks)
        self.snapshots_written += 1

    def _load(self, scope: str) -> Held[I] | None:
        """The scope's snapshot, if there is a usable one."""
        if self._snapshots is None:
            return None
        found = self._snapshots.read(snapshot_key(scope))
        if found is None:
            return None
        try:
            index = self._open(found[0])
            meta = index.meta()
        except sqlite3.DatabaseError:
            logger.warning("unreadable index snapshot; building from DynamoDB", extra={"scope": scope})
            return None
        watermarks = {stream: meta.get(f"watermark:{stream}", "") for stream in self._streams(scope)}
        # Records after a watermark older than this may have expired: the snapshot cannot be completed.
        oldest = behind(stamp(), RETENTION - timedelta(hours=1))
        if meta.get("layout") != self.layout or min(watermarks.values()) < oldest:
            return None
        return Held(index, watermarks, saved=dict(watermarks))

    def _build(self, scope: str) -> Held[I]:
        # Watermarks first: whatever changes while the tables are read is applied again afterwards.
        started = behind(stamp(), MARGIN)
        index = self._build_index(scope)
        return Held(index, {stream: started for stream in self._streams(scope)})

    def _catch_up(self, scope: str, held: Held[I]) -> None:
        streams = self._streams(scope)
        reading = stamp()
        found = list(_READERS.map(lambda stream: self._log.since(stream, _read_from(held, stream)), streams))
        held.read_at = reading
        fresh: list[Change] = []
        for stream, records in zip(streams, found):
            for record in records:
                key = f"{stream}|{record.at}"
                if key not in held.applied:
                    fresh.append(record)
                    held.applied.add(key)
                if record.at > held.watermarks[stream]:
                    held.watermarks[stream] = record.at
        if any(record.tags for record in fresh):
            self._tag_list.drop()
        if self._trash is not None and any(record.datasets for record in fresh):
            self._trash.drop()
        if fresh:
            self._apply(scope, held.index, fresh)
        # Forget applied keys that no later read can return again.
        floor = {stream: behind(held.watermarks[stream], MARGIN + MARGIN) for stream in streams}
        held.applied = {key for key in held.applied if key.split("|", 1)[1] >= floor[key.split("|", 1)[0]]}
