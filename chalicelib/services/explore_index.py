"""`IndexedExplore`: Explore's `ExploreIndex` over an in-memory index kept by every API instance.

DynamoDB stays the only source of truth; the index is a cache of it that can always be rebuilt.
Per project it holds, in an in-memory SQLite database (stdlib, nothing added to the package):
- `img`: every pool entry's filterable facts (path, folded file name, dimensions, size, status,
  landing time, annotation count) with an index in Explore order (newest first, then id);
- `tag`: the tags of those images (`tag_id`, `slot`);
- `task` and `place`: the project's ready tasks and where each image sits in their jobs.

A filter becomes one WHERE clause: the total is a COUNT, a page is a LIMIT/OFFSET in Explore order,
so a call costs the same whatever the filter selects and never reads the pool from DynamoDB.

Read-your-writes: every write to those facts appends a record to the change log in the same
DynamoDB write (store/changes.py). Each call first reads the records after the index's watermarks
(one consistent Query of the project's stream and one of the tag stream, in parallel) and re-reads
the items they name from their tables, so a 2xx write is visible to the next call on any instance.
A cold instance starts from the project's snapshot (CacheBucket, `explore-index/<project>.sqlite`:
the SQLite database image with its watermarks) and applies the change log after it; without a
usable snapshot it builds the index from DynamoDB — the pool partition, the tags of its images,
the ready tasks' job images — and writes one. The compactor (`compact`, on a schedule) keeps the
snapshots of changed projects current, so change records can expire.
"""
from __future__ import annotations

import functools
import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Iterable

from aws_lambda_powertools import Logger

from chalicelib.errors import NotFoundError
from chalicelib.services.explore import Placement, Selection
from chalicelib.services.filters import ImageFilter
from chalicelib.store.changes import RETENTION, TAGS_STREAM, Change, ChangeLog, project_stream, stamp
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import PoolEntry, PoolRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tags import Tag, TagRepository
from chalicelib.store.tasks import READY, Task, TaskRepository

logger = Logger(child=True)

# Records commit in about the order of their stamps: each call re-reads this far behind its
# watermark, so a record stamped earlier that committed later is still found (and applied once).
MARGIN = timedelta(seconds=10)
# A snapshot older than this behind the tag stream is written again by the compactor.
TAGS_REPLAY = timedelta(hours=1)

SCHEMA = """
CREATE TABLE img (
    slot INTEGER PRIMARY KEY,
    image_id TEXT NOT NULL UNIQUE,
    created INTEGER NOT NULL,
    added INTEGER NOT NULL,
    file_path TEXT NOT NULL,
    name_folded TEXT NOT NULL,
    status TEXT NOT NULL,
    width INTEGER,
    height INTEGER,
    size INTEGER,
    sha256 BLOB,
    annotation_count INTEGER NOT NULL
);
CREATE INDEX img_order ON img (created DESC, image_id);
CREATE TABLE tag_name (tag INTEGER PRIMARY KEY, tag_id TEXT NOT NULL UNIQUE);
CREATE TABLE tag (tag INTEGER NOT NULL, slot INTEGER NOT NULL, PRIMARY KEY (tag, slot)) WITHOUT ROWID;
CREATE INDEX tag_slot ON tag (slot);
CREATE TABLE task (task_id TEXT PRIMARY KEY, name TEXT NOT NULL, split TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE job (job INTEGER PRIMARY KEY, job_id TEXT NOT NULL UNIQUE, task_id TEXT NOT NULL);
CREATE INDEX job_task ON job (task_id);
CREATE TABLE place (job INTEGER NOT NULL, slot INTEGER NOT NULL, annotated INTEGER NOT NULL,
                    PRIMARY KEY (job, slot)) WITHOUT ROWID;
CREATE INDEX place_slot ON place (slot);
CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
"""
# A snapshot of another layout is not loaded (the index is built from DynamoDB instead).
LAYOUT = "2"
COLUMNS = "image_id, file_path, status, width, height, size, created, added, annotation_count, sha256"
ORDER = "ORDER BY created DESC, image_id"
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Ids that name rows of `job` (several tasks' jobs can hold an image).
IN_TASKS = "slot IN (SELECT place.slot FROM place JOIN job USING (job) WHERE job.task_id IN ({}))"


def _micros(moment: datetime) -> int:
    """A time as whole microseconds since the epoch: exact both ways, and ordered as the times."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def _time(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


def _row(entry: PoolEntry) -> tuple:
    return (entry.image_id, _micros(entry.created_at), _micros(entry.added_at), entry.file_path,
            entry.filename.casefold(), entry.status, entry.width, entry.height, entry.size,
            bytes.fromhex(entry.sha256) if entry.sha256 else None, entry.annotation_count)


def _entry(row: tuple) -> PoolEntry:
    image_id, file_path, status, width, height, size, created, added, count, sha256 = row
    return PoolEntry(image_id=image_id, file_path=file_path, status=status, width=width, height=height, size=size,
                     created_at=_time(created), added_at=_time(added), annotation_count=count,
                     sha256=sha256.hex() if sha256 is not None else None)


def _marks(n: int) -> str:
    return ",".join("?" * n)


def where(f: ImageFilter) -> tuple[str, list]:
    """The filter as a WHERE clause over `img` and its parameters; the same rules as PoolQuery's."""
    conditions: list[str] = []
    params: list = []
    if f.search:
        conditions.append("instr(name_folded, ?) > 0")
        params.append(f.search.casefold())
    if f.path_prefix:
        conditions.append("substr(file_path, 1, ?) = ?")
        params += [len(f.path_prefix), f.path_prefix]
    for column, low, high in (("width", f.min_width, f.max_width), ("height", f.min_height, f.max_height),
                              ("size", f.min_file_size, f.max_file_size)):
        if low is not None:
            conditions.append(f"{column} >= ?")
            params.append(low)
        if high is not None:
            conditions.append(f"{column} <= ?")
            params.append(high)

    def tagged(tags: list[str], mode: str) -> str:
        params.extend(tags)
        if mode == "all":
            return " AND ".join("slot IN (SELECT slot FROM tag JOIN tag_name USING (tag) WHERE tag_id = ?)"
                                for _ in tags)
        return f"slot IN (SELECT slot FROM tag JOIN tag_name USING (tag) WHERE tag_id IN ({_marks(len(tags))}))"

    if f.tag_ids:
        conditions.append(f"({tagged(f.tag_ids, f.tag_mode)})")
    if f.exclude_tag_ids:
        conditions.append(f"NOT ({tagged(f.exclude_tag_ids, f.exclude_mode)})")
    if f.task_id:
        conditions.append(IN_TASKS.format(_marks(len(f.task_id))))
        params += f.task_id
    if f.job_id:
        conditions.append("slot IN (SELECT place.slot FROM place JOIN job USING (job) WHERE job.job_id = ?)")
        params.append(f.job_id)
    if f.is_annotated is not None:
        conditions.append("annotation_count > 0" if f.is_annotated else "annotation_count = 0")
    if f.split is not None:
        in_split = ("slot IN (SELECT place.slot FROM place JOIN job USING (job) JOIN task USING (task_id) "
                    "WHERE task.split = ?)")
        params.append(f.split)
        if f.split == "none":  # an image in no task is in no split
            conditions.append(f"({in_split} OR slot NOT IN (SELECT slot FROM place))")
        else:
            conditions.append(in_split)
    return (" AND ".join(conditions) or "1"), params


class ProjectIndex:
    """One project's Explore facts. Every method holds the index's lock: instances are shared by
    the threads of one API process. Ids repeated per row (tags, jobs) are stored once, as integers."""

    def __init__(self, snapshot: bytes | None = None) -> None:
        self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        if snapshot is None:
            self._db.executescript(SCHEMA)
        else:
            self._db.deserialize(snapshot)
        self.lock = threading.RLock()

    def snapshot(self, watermarks: dict[str, str]) -> bytes:
        """The whole index as one SQLite database image, with the watermarks it is current to."""
        with self.lock:
            self._db.execute("DELETE FROM meta")
            self._db.executemany("INSERT INTO meta (name, value) VALUES (?, ?)",
                                 [("layout", LAYOUT), *((f"watermark:{k}", v) for k, v in watermarks.items())])
            self._db.execute("VACUUM")
            return self._db.serialize()

    def meta(self) -> dict[str, str]:
        with self.lock:
            return dict(self._db.execute("SELECT name, value FROM meta").fetchall())

    # Writing --------------------------------------------------------------------------------------

    def put_entries(self, entries: Iterable[PoolEntry]) -> None:
        with self.lock:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT INTO img (image_id, created, added, file_path, name_folded, status, width, height, size, "
                "sha256, annotation_count) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (image_id) DO UPDATE SET created = excluded.created, added = excluded.added, "
                "file_path = excluded.file_path, name_folded = excluded.name_folded, status = excluded.status, "
                "width = excluded.width, height = excluded.height, size = excluded.size, sha256 = excluded.sha256, "
                "annotation_count = excluded.annotation_count",
                [_row(entry) for entry in entries])
            self._db.execute("COMMIT")

    def drop_entries(self, image_ids: Iterable[str]) -> None:
        with self.lock:
            slots = list(self._slots(list(image_ids)).values())
            self._db.execute("BEGIN")
            for table in ("tag", "place", "img"):
                self._db.executemany(f"DELETE FROM {table} WHERE slot = ?", [(slot,) for slot in slots])
            self._db.execute("COMMIT")

    def set_tags(self, tags: dict[str, Iterable[str]]) -> None:
        """Replace the tags of these images (those not in the pool are skipped)."""
        with self.lock:
            slots = self._slots(list(tags))
            self._db.execute("BEGIN")
            numbers = self._numbers("tag_name", "tag", "tag_id", {tag for values in tags.values() for tag in values})
            self._db.executemany("DELETE FROM tag WHERE slot = ?", [(slot,) for slot in slots.values()])
            self._db.executemany("INSERT INTO tag (tag, slot) VALUES (?, ?)",
                                 [(numbers[tag], slots[image]) for image, values in tags.items() if image in slots
                                  for tag in values])
            self._db.execute("COMMIT")

    def put_task(self, task: Task, job_images: list[JobImage] | None) -> None:
        """Add or update a ready task; `job_images` (when given) replace its placements."""
        with self.lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT INTO task (task_id, name, split) VALUES (?, ?, ?) ON CONFLICT (task_id) DO "
                             "UPDATE SET name = excluded.name, split = excluded.split", (task.id, task.name, task.split))
            if job_images is not None:
                self._drop_places(task.id)
                slots = self._slots([image.image_id for image in job_images])
                jobs = {image.job_id for image in job_images}
                self._db.executemany("INSERT OR IGNORE INTO job (job_id, task_id) VALUES (?, ?)",
                                     [(job, task.id) for job in sorted(jobs)])
                numbers = self._numbers("job", "job", "job_id", jobs)
                self._db.executemany(
                    "INSERT OR REPLACE INTO place (job, slot, annotated) VALUES (?, ?, ?)",
                    [(numbers[image.job_id], slots[image.image_id], int(image.annotated))
                     for image in job_images if image.image_id in slots])
            self._db.execute("COMMIT")

    def drop_task(self, task_id: str) -> None:
        with self.lock:
            self._db.execute("BEGIN")
            self._drop_places(task_id)
            self._db.execute("DELETE FROM job WHERE task_id = ?", (task_id,))
            self._db.execute("DELETE FROM task WHERE task_id = ?", (task_id,))
            self._db.execute("COMMIT")

    def set_use(self, task_id: str, job_id: str, image_id: str, annotated: bool | None) -> None:
        """A job image's annotated flag (None: the job image is gone)."""
        with self.lock:
            slot = self._slot(image_id)
            if slot is None or not self.has_task(task_id):
                return
            self._db.execute("INSERT OR IGNORE INTO job (job_id, task_id) VALUES (?, ?)", (job_id, task_id))
            job = self._db.execute("SELECT job FROM job WHERE job_id = ?", (job_id,)).fetchone()[0]
            if annotated is None:
                self._db.execute("DELETE FROM place WHERE job = ? AND slot = ?", (job, slot))
            else:
                self._db.execute("INSERT OR REPLACE INTO place (job, slot, annotated) VALUES (?, ?, ?)",
                                 (job, slot, int(annotated)))

    def _drop_places(self, task_id: str) -> None:
        self._db.execute("DELETE FROM place WHERE job IN (SELECT job FROM job WHERE task_id = ?)", (task_id,))

    def _numbers(self, table: str, number: str, name: str, values: set[str]) -> dict[str, int]:
        """The integer of each id in an interning table, adding the ids it lacks."""
        if table == "tag_name":
            self._db.executemany("INSERT OR IGNORE INTO tag_name (tag_id) VALUES (?)", [(v,) for v in sorted(values)])
        found: dict[str, int] = {}
        ordered = sorted(values)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            found.update((value, key) for key, value in self._db.execute(
                f"SELECT {number}, {name} FROM {table} WHERE {name} IN ({_marks(len(chunk))})", chunk))
        return found

    # Reading --------------------------------------------------------------------------------------

    def has_task(self, task_id: str) -> bool:
        with self.lock:
            return self._db.execute("SELECT 1 FROM task WHERE task_id = ?", (task_id,)).fetchone() is not None

    def members(self, image_ids: Iterable[str]) -> set[str]:
        return set(self._slots(list(image_ids)))

    def count(self, clause: str, params: list) -> int:
        with self.lock:
            return self._db.execute(f"SELECT COUNT(*) FROM img WHERE {clause}", params).fetchone()[0]

    def entries(self, clause: str, params: list, start: int = 0, limit: int = -1) -> list[PoolEntry]:
        with self.lock:
            rows = self._db.execute(f"SELECT {COLUMNS} FROM img WHERE {clause} {ORDER} LIMIT ? OFFSET ?",
                                    [*params, limit, start]).fetchall()
        return [_entry(row) for row in rows]

    def placements(self, image_ids: list[str]) -> dict[str, list[Placement]]:
        found: dict[str, list[Placement]] = {}
        with self.lock:
            for chunk_start in range(0, len(image_ids), 500):
                chunk = image_ids[chunk_start : chunk_start + 500]
                rows = self._db.execute(
                    "SELECT img.image_id, task.task_id, task.name, task.split, job.job_id, place.annotated "
                    "FROM img JOIN place ON place.slot = img.slot JOIN job USING (job) JOIN task USING (task_id) "
                    f"WHERE img.image_id IN ({_marks(len(chunk))}) ORDER BY task.task_id, job.job_id", chunk)
                for image_id, task_id, name, split, job_id, annotated in rows:
                    found.setdefault(image_id, []).append(Placement(task_id, name, split, job_id, bool(annotated)))
        return found

    def size(self) -> int:
        with self.lock:
            return self._db.execute("SELECT COUNT(*) FROM img").fetchone()[0]

    def memory_bytes(self) -> int:
        with self.lock:
            pages = self._db.execute("PRAGMA page_count").fetchone()[0]
            return pages * self._db.execute("PRAGMA page_size").fetchone()[0]

    def _slot(self, image_id: str) -> int | None:
        row = self._db.execute("SELECT slot FROM img WHERE image_id = ?", (image_id,)).fetchone()
        return row[0] if row else None

    def _slots(self, image_ids: list[str]) -> dict[str, int]:
        slots: dict[str, int] = {}
        with self.lock:
            for start in range(0, len(image_ids), 500):
                chunk = image_ids[start : start + 500]
                slots.update(self._db.execute(
                    f"SELECT image_id, slot FROM img WHERE image_id IN ({_marks(len(chunk))})", chunk).fetchall())
        return slots


def _cursor_micros(negated_timestamp: float) -> int:
    """A cursor's order key holds `-created_at.timestamp()`; the index orders by whole microseconds."""
    return _micros(datetime.fromtimestamp(-negated_timestamp, tz=timezone.utc))


class IndexedSelection(Selection):
    """A filter's answer over a project index: total, pages and the whole selection are each read
    when first asked for (Explore reads a count and one page; task creation and exports the whole)."""

    def __init__(self, index: ProjectIndex, clause: str, params: list) -> None:
        super().__init__([])
        self._index = index
        self._clause = clause
        self._params = params

    @functools.cached_property
    def entries(self) -> list[PoolEntry]:  # type: ignore[override]
        return self._index.entries(self._clause, self._params)

    @functools.cached_property
    def total(self) -> int:  # type: ignore[override]
        return self._index.count(self._clause, self._params)

    def window(self, start: int, size: int) -> list[PoolEntry]:
        return self._index.entries(self._clause, self._params, start, size)

    def position_after(self, key: tuple[float, str]) -> int:
        created, image_id = _cursor_micros(key[0]), key[1]
        later = self._index.count(f"({self._clause}) AND (created < ? OR (created = ? AND image_id > ?))",
                                  [*self._params, created, created, image_id])
        return self.total - later


@dataclass
class _Held:
    index: ProjectIndex
    watermarks: dict[str, str]
    applied: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)
    saved: dict[str, str] | None = None  # the watermarks of the snapshot it came from (or last wrote)


def _behind(at: str, margin: timedelta) -> str:
    moment = datetime.strptime(at.split("#", 1)[0], "%Y-%m-%dT%H:%M:%S.%fZ") - margin
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snapshot_key(project_id: str) -> str:
    return f"explore-index/{project_id}.sqlite"


def _streams(project_id: str) -> list[str]:
    return [project_stream(project_id), TAGS_STREAM]


class IndexedExplore:
    """`ExploreIndex` served by per-project in-memory indexes, brought up to date on every call.

    A cold instance starts a project's index from its snapshot in S3 (`snapshots`) when there is a
    usable one — same layout, younger than the change log's retention — and from DynamoDB
    otherwise; either way it then applies the change log after the watermarks."""

    def __init__(self, pool: PoolRepository, tasks: TaskRepository, jobs: JobRepository, images: ImageRepository,
                 log: ChangeLog, snapshots: Bucket | None = None, projects: ProjectRepository | None = None,
                 tags: TagRepository | None = None) -> None:
        self._projects = projects or ProjectRepository()
        self._tag_list = tags or TagRepository()
        self._pool = pool
        self._tasks = tasks
        self._jobs = jobs
        self._images = images
        self._log = log
        self._snapshots = snapshots
        self._held: dict[str, _Held] = {}
        self._lock = threading.Lock()
        self._tag_meta: dict[str, Tag] | None = None

    # ExploreIndex ---------------------------------------------------------------------------------

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        clause, params = where(image_filter)
        return IndexedSelection(self.current(project_id), clause, params)

    def placements(self, project_id: str, image_ids: list[str]) -> dict[str, list[Placement]]:
        # Explore asks right after `select`, which brought the index up to date: reading the change
        # log again would cost two more requests for the same answer.
        with self._lock:
            held = self._held.get(project_id)
        index = held.index if held is not None else self.current(project_id)
        return index.placements(list(image_ids))

    def jobs(self, task_ids: list[str]) -> list[Job]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return [job for jobs in pool.map(self._jobs.of_task, task_ids) for job in jobs]

    def tag_index(self) -> dict[str, Tag]:
        """Every tag by id, as of the last change applied: read once per instance, and again after
        the tag stream records a tag created, changed or deleted."""
        with self._lock:
            cached = self._tag_meta
        if cached is None:
            cached = {tag.id: tag for tag in self._tag_list.list()}
            with self._lock:
                self._tag_meta = cached
        return cached

    # Keeping it current ---------------------------------------------------------------------------

    def current(self, project_id: str) -> ProjectIndex:
        """The project's index with every change recorded so far applied."""
        with self._lock:
            held = self._held.get(project_id)
        if held is None:
            held = self._load(project_id) or self._build(project_id)
            with self._lock:
                held = self._held.setdefault(project_id, held)
        with held.lock:
            self._catch_up(project_id, held)
            if held.saved is None:  # built from DynamoDB: the next cold instance starts from this
                self._save(project_id, held)
        return held.index

    def forget(self, project_id: str | None = None) -> None:
        with self._lock:
            if project_id is None:
                self._held.clear()
            else:
                self._held.pop(project_id, None)

    def purge_project(self, project_id: str) -> None:
        """A deleted project's index leaves this instance and its snapshot the cache bucket (its
        change records expire)."""
        self.forget(project_id)
        if self._snapshots is not None:
            self._snapshots.delete(snapshot_key(project_id))

    def rebuild(self, project_id: str) -> ProjectIndex:
        """Build the project's index again from DynamoDB, keep it and write its snapshot."""
        held = self._build(project_id)
        with self._lock:
            self._held[project_id] = held
        with held.lock:
            self._catch_up(project_id, held)
            self._save(project_id, held)
        return held.index

    def compact(self, project_id: str) -> bool:
        """Bring the project's snapshot up to date: written when changes were applied after the
        snapshot it started from, or when that one is half-way to the change log's retention
        (records a snapshot would need must never expire first). Returns whether it wrote one."""
        self.current(project_id)
        with self._lock:
            held = self._held[project_id]
        with held.lock:
            old = _behind(stamp(), RETENTION / 2)
            if held.saved is not None and held.saved == held.watermarks and min(held.saved.values()) > old:
                return False
            self._save(project_id, held)
            return True

    def compact_all(self) -> int:
        """`compact` every project whose index changed since its snapshot (or whose snapshot is
        getting old); returns how many snapshots were written."""
        written = 0
        for project in self._projects.all():
            if self._snapshot_current(project.id):
                continue
            written += self.compact(project.id)
        return written

    def _snapshot_current(self, project_id: str) -> bool:
        """Whether the project's snapshot already holds every record of its stream and is young
        enough (decided from the snapshot's metadata and the newest record: no download)."""
        if self._snapshots is None:
            return True
        metadata = self._snapshots.metadata(snapshot_key(project_id))
        if metadata is None:
            return False
        saved, saved_tags = metadata.get("watermark-project", ""), metadata.get("watermark-tags", "")
        if min(saved, saved_tags) <= _behind(stamp(), RETENTION / 2):
            return False
        latest = self._log.latest(project_stream(project_id))
        if latest is not None and latest > saved:
            return False
        # Tag records are global: whether one touched this project's images is only known by
        # applying it, so a cold instance replays at most TAGS_REPLAY of them (plus one period).
        if saved_tags <= _behind(stamp(), TAGS_REPLAY):
            latest_tags = self._log.latest(TAGS_STREAM)
            return latest_tags is None or latest_tags <= saved_tags
        return True

    def _save(self, project_id: str, held: _Held) -> None:
        if self._snapshots is None:
            return
        data = held.index.snapshot(held.watermarks)
        self._snapshots.put(snapshot_key(project_id), data, "application/vnd.sqlite3", metadata={
            "watermark-project": held.watermarks[project_stream(project_id)],
            "watermark-tags": held.watermarks[TAGS_STREAM]})
        held.saved = dict(held.watermarks)

    def _load(self, project_id: str) -> _Held | None:
        """The project's snapshot, if there is a usable one."""
        if self._snapshots is None:
            return None
        found = self._snapshots.read(snapshot_key(project_id))
        if found is None:
            return None
        try:
            index = ProjectIndex(found[0])
            meta = index.meta()
        except sqlite3.DatabaseError:
            logger.warning("unreadable Explore index snapshot; building from DynamoDB", extra={"project_id": project_id})
            return None
        watermarks = {stream: meta.get(f"watermark:{stream}", "") for stream in _streams(project_id)}
        # Records after a watermark older than this may have expired: the snapshot cannot be completed.
        oldest = _behind(stamp(), RETENTION - timedelta(hours=1))
        if meta.get("layout") != LAYOUT or min(watermarks.values()) < oldest:
            return None
        return _Held(index, watermarks, saved=dict(watermarks))

    def _build(self, project_id: str) -> _Held:
        """The project's index read from DynamoDB."""
        # Watermarks first: whatever changes while the tables are read is applied again afterwards.
        started = _behind(stamp(), MARGIN)
        index = ProjectIndex()
        entries = self._pool.entries(project_id)
        index.put_entries(entries)
        self._refresh_tags(index, [entry.image_id for entry in entries])
        tasks = self._tasks.tasks(project_id)
        by_task: dict[str, list[JobImage]] = {task.id: [] for task in tasks}
        if tasks:
            for image in self._jobs.images_of_tasks(list(by_task)):
                by_task[image.task_id].append(image)
        for task in tasks:
            index.put_task(task, by_task[task.id])
        return _Held(index, {project_stream(project_id): started, TAGS_STREAM: started})

    def _catch_up(self, project_id: str, held: _Held) -> None:
        streams = _streams(project_id)
        with ThreadPoolExecutor(max_workers=2) as pool:
            found = list(pool.map(lambda stream: self._log.since(stream, _behind(held.watermarks[stream], MARGIN)),
                                  streams))
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
            with self._lock:
                self._tag_meta = None
        if fresh:
            self._apply(project_id, held.index, fresh)
        # Forget applied keys that no later read can return again.
        floor = {stream: _behind(held.watermarks[stream], MARGIN + MARGIN) for stream in streams}
        held.applied = {key for key in held.applied if key.split("|", 1)[1] >= floor[key.split("|", 1)[0]]}

    def _apply(self, project_id: str, index: ProjectIndex, records: list[Change]) -> None:
        entries = {image for record in records for image in record.entries}
        tagged = {image for record in records for image in record.tagged}
        tasks = {task for record in records for task in record.tasks}
        uses = {use for record in records for use in record.uses}
        if entries:
            present = {entry.image_id: entry for entry in self._pool.get_many(project_id, entries)}
            added = [image for image in present if image not in index.members([image])]
            index.drop_entries(entries - set(present))
            index.put_entries(present.values())
            tagged |= set(added)
        if tagged:
            self._refresh_tags(index, list(index.members(tagged)))
        for task_id in sorted(tasks):
            self._refresh_task(project_id, index, task_id)
        for task_id, job_id, image_id in sorted(uses):
            if task_id in tasks or not index.has_task(task_id):
                continue
            image = self._jobs.job_image_of(task_id, job_id, image_id)
            index.set_use(task_id, job_id, image_id, None if image is None else image.annotated)

    def _refresh_tags(self, index: ProjectIndex, image_ids: list[str]) -> None:
        if not image_ids:
            return
        tags = self._images.tag_sets(image_ids)
        index.set_tags({image_id: sorted(tags.get(image_id, ())) for image_id in image_ids})

    def _refresh_task(self, project_id: str, index: ProjectIndex, task_id: str) -> None:
        try:
            task: Task | None = self._tasks.task(project_id, task_id, include_creating=True)
        except NotFoundError:  # deleted
            task = None
        if task is None or task.state != READY:
            index.drop_task(task_id)
            return
        known = index.has_task(task_id)
        index.put_task(task, None if known else self._jobs.images_of_tasks([task_id]))
