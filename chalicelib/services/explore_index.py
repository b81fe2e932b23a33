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

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from aws_lambda_powertools import Logger

from chalicelib.errors import NotFoundError
from chalicelib.services.explore import Placement, Selection
from chalicelib.services.filters import ImageFilter
from chalicelib.services.project_index import LAYOUT, IndexedSelection, ProjectIndex, where
from chalicelib.store.changes import RETENTION, TAGS_STREAM, Change, ChangeLog, project_stream, stamp
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tags import Tag, TagRepository
from chalicelib.store.tasks import READY, Task, TaskRepository

logger = Logger(child=True)

# Records commit in about the order of their stamps: each call re-reads this far behind its
# watermark, so a record stamped earlier that committed later is still found (and applied once).
MARGIN = timedelta(seconds=10)
# A snapshot older than this behind the tag stream is written again by the compactor.
TAGS_REPLAY = timedelta(hours=1)

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
