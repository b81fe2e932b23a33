"""Explore: a project's pool, filtered, newest first, one page and the total.

Everything that selects pool images (Explore, saved filters, task creation from a filter, and
exports) goes through one query interface: `ExploreIndex.select(project_id, filter)` for the
selection and its total, `ExploreIndex.placements(project_id, image_ids)` for the tasks and jobs
the images of one page are in. `IndexedExplore` (services/explore_index.py) serves it from an
in-memory index kept current from the change log; `PoolQuery`, here, serves it straight from
DynamoDB (the reference the index is tested against, and the baseline of bench_explore) and
evaluates the filter in memory, reading only what the filter needs:

- the candidates come from the most selective index the filter names: the tag links of its
  include tags (for ALL an index nested-loop join: the rarest tag read whole, the others looked
  up by key for the remaining candidates; for ANY their union) and the job images of its tasks;
  their pool entries are then fetched by key. Without such a condition (or with too many candidates) the
  whole pool partition is read;
- size, path, name and "annotated" are facts of the pool entry (its `annotation_count` is kept
  exact by the annotation transactions), so they cost no further read;
- tasks' job images are read only for a task, job or split condition.

docs/data-model.md describes both.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from chalicelib.errors import BadRequestError, ForbiddenError
from chalicelib.services import cursors
from chalicelib.services.access import Access, Caller, Grant, grant
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.services.images import ImageService, ImageView
from chalicelib.services.shared_facts import AnalysisFacts, about_shared_facts, completed_facts, shared_match
from chalicelib.store.analyses import AnalysisRepository
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository, Use
from chalicelib.store.pool import PoolEntry, PoolRepository
from chalicelib.store.tasks import Task, TaskRepository
from chalicelib.store.tags import Tag, TagRepository


@dataclass(frozen=True)
class Placement:
    """Where a pool image is used: a job of a task, and whether it is annotated there."""

    task_id: str
    task_name: str
    split: str
    job_id: str
    annotated: bool


class Selection:
    """The images a filter selects, in Explore order (newest first, then id), with the placements
    the index read while selecting them (possibly none). An index may compute the total and pages
    without holding every entry (`window`, `position_after`); `entries` is the whole selection."""

    def __init__(self, entries: list[PoolEntry], placements: dict[str, list[Placement]] | None = None) -> None:
        self._entries = entries
        self.placements = placements or {}

    @property
    def entries(self) -> list[PoolEntry]:
        return self._entries

    @property
    def total(self) -> int:
        return len(self.entries)

    def window(self, start: int, size: int) -> list[PoolEntry]:
        """`size` entries from position `start`."""
        return self.entries[start : start + size]

    def position_after(self, key: tuple[float, str]) -> int:
        """The position of the first entry after order key `key` (a cursor's)."""
        return next((n for n, entry in enumerate(self.entries) if order_key(entry) > key), len(self.entries))


class ExploreIndex(Protocol):
    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        """Every pool image the filter selects, in Explore order; `placements` may be partial."""

    def placements(self, project_id: str, image_ids: list[str]) -> dict[str, list[Placement]]:
        """Where each image is used in the project's tasks (for one page)."""

    def jobs(self, task_ids: list[str]) -> list[Job]:
        """The jobs of these tasks."""

    def tag_index(self) -> dict[str, Tag]:
        """Every tag by id (names and colours of a page's tags)."""

    def is_warm(self, project_id: str) -> bool:
        """Whether this instance holds the project's index already (a call then costs no build)."""


# Candidates up to this many are fetched by key (BatchGetItem); beyond it reading the whole pool
# partition costs fewer requests for the same items.
LOOKUP_LIMIT = 5000
# A tag's links are looked up by key for the candidates when they are fewer than 1/JOIN_RATIO of
# its links (a BatchGetItem key costs about what a Query item costs).
JOIN_RATIO = 2


def order_key(entry: PoolEntry) -> tuple[float, str]:
    return (-entry.created_at.timestamp(), entry.image_id)


class PoolQuery:
    """`ExploreIndex` over DynamoDB: Query the project's partitions, filter in memory."""

    def __init__(self, pool: PoolRepository, tasks: TaskRepository, jobs: JobRepository,
                 links: ImageTagRepository, tags: TagRepository, images: ImageRepository | None = None,
                 analyses: AnalysisRepository | None = None) -> None:
        self._images = images or ImageRepository()
        self._analyses = analyses or AnalysisRepository()
        self._pool = pool
        self._tasks = tasks
        self._jobs = jobs
        self._links = links
        self._tags = tags

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        f = image_filter
        by_task = bool(f.task_id or f.job_id or f.split is not None)
        with ThreadPoolExecutor(max_workers=2) as pool:
            placements_f = pool.submit(self._task_placements, project_id, f) if by_task else None
            tagged, candidates = self._tagged(f)
            placements = placements_f.result() if placements_f else {}
        if f.task_id or f.job_id:
            used = {image for image, found in placements.items() if _in_tasks(f, found)}
            candidates = used if candidates is None else candidates & used
        if candidates is not None and len(candidates) <= LOOKUP_LIMIT:
            entries = self._pool.get_many(project_id, candidates)
        else:
            entries = self._pool.entries(project_id)
            if candidates is not None:
                entries = [entry for entry in entries if entry.image_id in candidates]
        matches = [entry for entry in entries if _matches(f, entry, placements.get(entry.image_id, ()), tagged)]
        if about_shared_facts(f):
            matches = self._shared_matches(f, matches)
        matches.sort(key=order_key)
        return Selection(matches, placements)

    def _shared_matches(self, f: ImageFilter, entries: list[PoolEntry]) -> list[PoolEntry]:
        """The entries whose caption and completed analyses meet the filter (their image records,
        then the analyses they name with their predictions, read for these entries only)."""
        facts = self._images.shared_facts([entry.image_id for entry in entries])
        analyses: dict[str, list[AnalysisFacts]] = {}
        if f.prediction_model is not None or f.predicts():
            for found in completed_facts(self._analyses, [a for one in facts.values() for a in one.analysis_ids]):
                analyses.setdefault(found.image_id, []).append(found)
        # An entry whose record is gone has no caption and no analysis (as the index holds it).
        return [entry for entry in entries if shared_match(
            f, facts[entry.image_id].caption if entry.image_id in facts else None, analyses.get(entry.image_id, []))]

    def _tagged(self, f: ImageFilter) -> tuple[dict[str, set[str]], set[str] | None]:
        """For each tag the filter names, the images carrying it — all of them, or only those among
        the candidates when that is all the filter can still use — and the candidates the include
        tags leave (None without include tags).

        ALL is an index nested-loop join: the rarest tag (by usage count) is read whole, each other
        tag is looked up by key for the remaining candidates while they are far fewer than its
        links, and read whole otherwise. Exclusions are looked up the same way."""
        tag_ids = list(dict.fromkeys(f.tag_ids + f.exclude_tag_ids))
        if not tag_ids:
            return {}, None
        usage = {tag: found.usage_count for tag, found in self._tags.find(tag_ids).items()}
        whole = lambda tag: set(self._links.images_with(tag))  # noqa: E731
        tagged: dict[str, set[str]] = {}
        candidates: set[str] | None = None
        if f.tag_ids and f.tag_mode == "all":
            for tag in sorted(dict.fromkeys(f.tag_ids), key=lambda tag: usage.get(tag, 0)):
                if candidates is not None and len(candidates) * JOIN_RATIO < usage.get(tag, 0):
                    tagged[tag] = self._links.linked(tag, candidates)
                else:
                    tagged[tag] = whole(tag)
                candidates = tagged[tag] if candidates is None else candidates & tagged[tag]
        elif f.tag_ids:
            with ThreadPoolExecutor(max_workers=4) as pool:
                tagged.update(zip(f.tag_ids, pool.map(whole, f.tag_ids)))
            candidates = set().union(*(tagged[tag] for tag in f.tag_ids))
        for tag in f.exclude_tag_ids:
            if tag in tagged:
                continue
            if candidates is not None and len(candidates) * JOIN_RATIO < usage.get(tag, 0):
                tagged[tag] = self._links.linked(tag, candidates)
            else:
                tagged[tag] = whole(tag)
        return tagged, candidates

    def placements(self, project_id: str, image_ids: list[str]) -> dict[str, list[Placement]]:
        if not image_ids:
            return {}
        with ThreadPoolExecutor(max_workers=2) as pool:
            tasks_f = pool.submit(self._tasks.tasks, project_id)
            uses = self._jobs.uses(project_id, image_ids)
            tasks = tasks_f.result()
        return _placements(tasks, uses)

    def jobs(self, task_ids: list[str]) -> list[Job]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return [job for jobs in pool.map(self._jobs.of_task, task_ids) for job in jobs]

    def tag_index(self) -> dict[str, Tag]:
        return {tag.id: tag for tag in self._tags.list()}

    def is_warm(self, project_id: str) -> bool:
        return False

    def _task_placements(self, project_id: str, f: ImageFilter) -> dict[str, list[Placement]]:
        """Placements of the tasks a task, job or split condition needs: only the named tasks for a
        task condition alone, every task otherwise (a split is decided over all of an image's)."""
        tasks = self._tasks.tasks(project_id)
        if f.task_id and not f.job_id and f.split is None:
            tasks = [task for task in tasks if task.id in f.task_id]
        return _placements(tasks, self._jobs.images_of_tasks([task.id for task in tasks]) if tasks else [])


def _in_tasks(f: ImageFilter, placements: list[Placement]) -> bool:
    return ((not f.task_id or any(p.task_id in f.task_id for p in placements))
            and (not f.job_id or any(p.job_id == f.job_id for p in placements)))


def _placements(tasks: list[Task], job_images: list[JobImage] | list[Use]) -> dict[str, list[Placement]]:
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
    if (f.task_id or f.job_id) and not _in_tasks(f, placements):
        return False
    if f.is_annotated is not None and entry.annotated != f.is_annotated:
        return False
    if f.split is not None:
        # "none" is in no split: no task of the image has one (tasks whose split is "none" count as none)
        splits = {p.split for p in placements} - {"none"} or {"none"}
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
    return cursors.encode("explore", [entry.created_at.isoformat(), entry.image_id])


def _order_key(position: Any) -> tuple[float, str]:
    created_at, image_id = position
    if not isinstance(created_at, str) or not isinstance(image_id, str):
        raise TypeError("expected [time, image id]")
    return (-datetime.fromisoformat(created_at).timestamp(), image_id)


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The order key of the entry a cursor points at."""
    return cursors.decode(cursor, "explore", _order_key)


def _placement_filters_allowed(caller: Caller, image_filter: ImageFilter) -> None:
    """Where images sit in tasks is shown to an annotator only for their own jobs, so they may not
    filter on it either: the answer would tell them about the others."""
    if grant(caller.role, "jobs.read") is Grant.ANY:
        return
    used = [name for name in ("task_id", "job_id", "split", "is_annotated") if getattr(image_filter, name)
            not in (None, [])]
    if used:
        raise ForbiddenError(f"Your role '{caller.role}' does not allow filtering by {', '.join(used)}: "
                             "you see only where images sit in the jobs assigned to you",
                             [{"field": name, "location": "query", "message": "not allowed for your role",
                               "type": "forbidden"} for name in used])


_COUNTING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="explore-total")


class ExploreService:
    def __init__(self, access: Access, index: ExploreIndex, images: ImageService) -> None:
        self._access = access
        self._index = index
        self._images = images

    def explore(self, actor: Identity, project_id: str, image_filter: ImageFilter, *, page: int, page_size: int,
                cursor: str | None = None) -> ExplorePage:
        """One page of the filtered pool and the total; `cursor` (from the previous page) beats `page`."""
        # A warm index answers before the access check, so the check and the page's images are
        # one request; otherwise strangers are turned away before anything is built for them.
        warm = self._index.is_warm(project_id)
        caller = None if warm else self._allowed(actor, project_id, image_filter)
        try:
            position = decode_cursor(cursor) if cursor else None
        except BadRequestError:
            if caller is None:  # a stranger learns nothing, not even that the cursor is bad
                self._allowed(actor, project_id, image_filter)
            raise
        selection = self._index.select(project_id, image_filter)
        start = selection.position_after(position) if position is not None else (page - 1) * page_size
        chunk = selection.window(start, page_size)
        ids = [entry.image_id for entry in chunk]
        placements = self._index.placements(project_id, ids)
        if caller is None:
            # The total is counted while the request is in flight (SQLite lets go of the GIL).
            counting = _COUNTING.submit(lambda: selection.total)
            caller, images = self._access.require_reading(actor, project_id, "pool.read", self._images.keys(ids))
            _placement_filters_allowed(caller, image_filter)
            views = {view.image.id: view for view in self._images.views_of_read(images, self._index.tag_index())}
            counting.result()
        else:
            views = {view.image.id: view for view in self._images.views(ids, self._index.tag_index())}
        if grant(caller.role, "jobs.read") is not Grant.ANY:
            # An annotator sees where an image is used only in the jobs they may open.
            placements = self._visible(placements, caller)
        items = [ExploreItem(views[entry.image_id], placements.get(entry.image_id, []))
                 for entry in chunk if entry.image_id in views]
        more = start + page_size < selection.total
        return ExplorePage(items, selection.total, encode_cursor(chunk[-1]) if chunk and more else None)

    def _allowed(self, actor: Identity, project_id: str, image_filter: ImageFilter) -> Caller:
        caller = self._access.require(actor, project_id, "pool.read")
        _placement_filters_allowed(caller, image_filter)
        return caller

    def _visible(self, placements: dict[str, list[Placement]], caller: Caller) -> dict[str, list[Placement]]:
        task_ids = sorted({p.task_id for found in placements.values() for p in found})
        allowed = {job.id for job in self._index.jobs(task_ids) if caller.may("jobs.read", job)} if task_ids else set()
        return {image: [p for p in found if p.job_id in allowed] for image, found in placements.items()}

    def selection_for(self, actor: Identity, project_id: str, image_filter: ImageFilter) -> Selection:
        """The whole selection of a filter for a caller who may read the pool (and filter as asked)."""
        self._allowed(actor, project_id, image_filter)
        return self._index.select(project_id, image_filter)

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        """The whole selection of a filter (task creation, exports); the caller checked access."""
        return self._index.select(project_id, image_filter)
