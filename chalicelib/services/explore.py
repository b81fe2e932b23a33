"""Explore: a project's pool, filtered, newest first, one page and the total.

Everything that selects pool images (Explore, saved filters, task creation from a filter, and
exports) goes through one query interface, `ExploreIndex.select(project_id, filter)`. Today it is
served by `PoolQuery`, which reads the project's own partitions — the pool (with its fact copies),
the tasks, the tasks' job images, and the tag links of the tags the filter names — and evaluates
the filter in memory. A dedicated index can replace it without touching any caller
(docs/data-model.md says what such an index needs).
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from chalicelib.services import cursors
from chalicelib.services.access import Access
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.services.images import ImageService, ImageView
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.jobs import JobImage, JobRepository
from chalicelib.store.pool import PoolEntry, PoolRepository
from chalicelib.store.projects import ProjectRepository, Task


@dataclass(frozen=True)
class Placement:
    """Where a pool image is used: a job of a task, and whether it is annotated there."""

    task_id: str
    task_name: str
    split: str
    job_id: str
    annotated: bool


@dataclass(frozen=True)
class Selection:
    """The images a filter selects, in Explore order (newest first, then id), with their placements."""

    entries: list[PoolEntry]
    placements: dict[str, list[Placement]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.entries)


class ExploreIndex(Protocol):
    def select(self, project_id: str, image_filter: ImageFilter) -> Selection: ...


def order_key(entry: PoolEntry) -> tuple[float, str]:
    return (-entry.created_at.timestamp(), entry.image_id)


class PoolQuery:
    """`ExploreIndex` over DynamoDB: Query the project's partitions, filter in memory."""

    def __init__(self, pool: PoolRepository, projects: ProjectRepository, jobs: JobRepository,
                 links: ImageTagRepository) -> None:
        self._pool = pool
        self._projects = projects
        self._jobs = jobs
        self._links = links

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        tag_ids = list(dict.fromkeys(image_filter.tag_ids + image_filter.exclude_tag_ids))
        with ThreadPoolExecutor(max_workers=4) as pool:
            entries_f = pool.submit(self._pool.entries, project_id)
            tasks_f = pool.submit(self._projects.tasks, project_id)
            tagged_f = [pool.submit(lambda tag: set(self._links.images_with(tag)), tag) for tag in tag_ids]
            tasks: list[Task] = tasks_f.result()
            job_images = self._jobs.images_of_tasks([task.id for task in tasks]) if tasks else []
            entries = entries_f.result()
            tagged = {tag: future.result() for tag, future in zip(tag_ids, tagged_f)}
        placements = _placements(tasks, job_images)
        matches = [entry for entry in entries if _matches(image_filter, entry, placements.get(entry.image_id, ()),
                                                          tagged)]
        matches.sort(key=order_key)
        return Selection(matches, placements)


def _placements(tasks: list[Task], job_images: list[JobImage]) -> dict[str, list[Placement]]:
    by_id = {task.id: task for task in tasks}
    placements: dict[str, list[Placement]] = {}
    for image in job_images:
        task = by_id.get(image.task_id)
        if task is not None:
            placements.setdefault(image.image_id, []).append(
                Placement(task.id, task.name, task.split, image.job_id, image.annotated))
    return placements


def _has(tagged: dict[str, set[str]], tags: list[str], image_id: str, mode: str) -> bool:
    hits = (image_id in tagged[tag] for tag in tags)
    return all(hits) if mode == "all" else any(hits)


def _within(value: int | None, low: int | None, high: int | None) -> bool:
    if low is None and high is None:
        return True
    return value is not None and (low is None or value >= low) and (high is None or value <= high)


def _matches(f: ImageFilter, entry: PoolEntry, placements, tagged: dict[str, set[str]]) -> bool:
    if f.search and f.search.casefold() not in entry.filename.casefold():
        return False
    if f.path_prefix and not entry.file_path.startswith(f.path_prefix):
        return False
    if not (_within(entry.width, f.min_width, f.max_width) and _within(entry.height, f.min_height, f.max_height)
            and _within(entry.size, f.min_file_size, f.max_file_size)):
        return False
    if f.tag_ids and not _has(tagged, f.tag_ids, entry.image_id, f.tag_mode):
        return False
    if f.exclude_tag_ids and _has(tagged, f.exclude_tag_ids, entry.image_id, f.exclude_mode):
        return False
    if f.task_id and not any(p.task_id in f.task_id for p in placements):
        return False
    if f.job_id and not any(p.job_id == f.job_id for p in placements):
        return False
    if f.is_annotated is not None and any(p.annotated for p in placements) != f.is_annotated:
        return False
    if f.split is not None:
        splits = {p.split for p in placements} or {"none"}
        if f.split not in splits:
            return False
    return True


@dataclass(frozen=True)
class ExploreItem:
    view: ImageView
    placements: list[Placement]

    @property
    def is_annotated(self) -> bool:
        return any(p.annotated for p in self.placements)


@dataclass(frozen=True)
class ExplorePage:
    items: list[ExploreItem]
    total: int
    next_cursor: str | None


def encode_cursor(entry: PoolEntry) -> str:
    return cursors.encode(json.dumps([entry.created_at.isoformat(), entry.image_id]))


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The order key of the entry a cursor points at."""
    try:
        created_at, image_id = json.loads(cursors.decode(cursor))
        return (-datetime.fromisoformat(created_at).timestamp(), str(image_id))
    except (ValueError, TypeError) as exc:
        raise cursors.malformed() from exc


class ExploreService:
    def __init__(self, access: Access, index: ExploreIndex, images: ImageService) -> None:
        self._access = access
        self._index = index
        self._images = images

    def explore(self, actor: Identity, project_id: str, image_filter: ImageFilter, *, page: int, page_size: int,
                cursor: str | None = None) -> ExplorePage:
        """One page of the filtered pool and the total; `cursor` (from the previous page) beats `page`."""
        self._access.require(actor, project_id, "pool.read")
        selection = self._index.select(project_id, image_filter)
        entries = selection.entries
        if cursor:
            after = decode_cursor(cursor)
            start = next((n for n, entry in enumerate(entries) if order_key(entry) > after), len(entries))
        else:
            start = (page - 1) * page_size
        chunk = entries[start : start + page_size]
        views = {view.image.id: view for view in self._images.views([entry.image_id for entry in chunk])}
        items = [ExploreItem(views[entry.image_id], selection.placements.get(entry.image_id, []))
                 for entry in chunk if entry.image_id in views]
        more = start + page_size < len(entries)
        return ExplorePage(items, selection.total, encode_cursor(chunk[-1]) if chunk and more else None)

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        """The whole selection of a filter (task creation, exports); the caller checked access."""
        return self._index.select(project_id, image_filter)
