"""`IndexedExplore`: Explore's `ExploreIndex` over an in-memory index kept by every API instance.

Per project it holds, in an in-memory SQLite database (services/project_index.py, stdlib, nothing
added to the package):
- `img`: every pool entry's filterable facts (path, folded file name, dimensions, size, status,
  landing time, annotation count, hashes) with an index in Explore order (newest first, then id);
- `tag`: the tags of those images (`tag_id`, `slot`);
- `task` and `place`: the project's ready tasks and where each image sits in their jobs;
- the caption of each image (a column of `img`), and `model`, `analysis`, `pred`: the images'
  completed ML analyses and their predictions' class and confidence.

A filter becomes one WHERE clause: the total is a COUNT, a page is a LIMIT/OFFSET in Explore order,
so a call costs the same whatever the filter selects and never reads the pool from DynamoDB.

How it stays current (read-your-writes, snapshots, compaction) is `KeptIndexes`'
(services/kept_index.py); this module says what feeds a project's index: its stream `P#<project>`
(pool entries, tasks, job images) and the tag stream (tags, captions, completed analyses), and how
to build it from DynamoDB — the pool partition, the tags, captions and analyses of its images (with
their predictions), the ready tasks' job images.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from chalicelib.errors import NotFoundError
from chalicelib.services.explore import Placement, Selection
from chalicelib.services.filters import ImageFilter
from chalicelib.services.kept_index import KeptIndexes, TagList
from chalicelib.services.trash import Trash
from chalicelib.services.project_index import LAYOUT, IndexedSelection, ProjectIndex
from chalicelib.services.shared_facts import completed_facts
from chalicelib.store.analyses import AnalysisRepository
from chalicelib.store.changes import Change, ChangeLog, project_stream
from chalicelib.store.images import ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tasks import READY, Task, TaskRepository


class IndexedExplore(KeptIndexes[ProjectIndex]):
    """`ExploreIndex` served by per-project in-memory indexes, brought up to date on every call."""

    layout = LAYOUT

    def __init__(self, pool: PoolRepository, tasks: TaskRepository, jobs: JobRepository, images: ImageRepository,
                 log: ChangeLog, snapshots: Bucket | None = None, projects: ProjectRepository | None = None,
                 tag_list: TagList | None = None, trash: "Trash | None" = None,
                 analyses: AnalysisRepository | None = None) -> None:
        super().__init__(log, snapshots, tag_list, trash)
        self._analyses = analyses or AnalysisRepository()
        self._projects = projects or ProjectRepository()
        self._pool = pool
        self._tasks = tasks
        self._jobs = jobs
        self._images = images

    # ExploreIndex ---------------------------------------------------------------------------------

    def select(self, project_id: str, image_filter: ImageFilter) -> Selection:
        index = self.current(project_id)  # caught up first: a dataset deleted a moment ago is hidden
        return IndexedSelection(index, image_filter, self.hidden())

    def placements(self, project_id: str, image_ids: list[str]) -> dict[str, list[Placement]]:
        # Explore asks right after `select`, which brought the index up to date: reading the change
        # log again would cost two more requests for the same answer.
        index = self.held(project_id) or self.current(project_id)
        return index.placements(list(image_ids))

    def jobs(self, task_ids: list[str]) -> list[Job]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return [job for jobs in pool.map(self._jobs.of_task, task_ids) for job in jobs]

    def is_warm(self, project_id: str) -> bool:
        return self.held(project_id) is not None

    # Upkeep -----------------------------------------------------------------------------------------

    def purge_project(self, project_id: str) -> None:
        self.purge(project_id)

    def compact_all(self) -> int:
        """`compact` every project whose index changed since its snapshot (or whose snapshot is
        getting old); returns how many snapshots were written."""
        return sum(self.compact_if_behind(project.id) for project in self._projects.all())

    # What feeds a project's index ---------------------------------------------------------------

    def _own_stream(self, scope: str) -> str:
        return project_stream(scope)

    def _open(self, snapshot: bytes) -> ProjectIndex:
        return ProjectIndex(snapshot)

    def _build_index(self, scope: str) -> ProjectIndex:
        index = ProjectIndex()
        entries = self._pool.entries(scope)
        index.put_entries(entries)
        self._refresh_shared(index, [entry.image_id for entry in entries])
        tasks = self._tasks.tasks(scope)
        by_task: dict[str, list[JobImage]] = {task.id: [] for task in tasks}
        if tasks:
            for image in self._jobs.images_of_tasks(list(by_task)):
                by_task[image.task_id].append(image)
        for task in tasks:
            index.put_task(task, by_task[task.id])
        return index

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
            self._refresh_shared(index, list(index.members(tagged)))
        for task_id in sorted(tasks):
            self._refresh_task(project_id, index, task_id)
        for task_id, job_id, image_id in sorted(uses):
            if task_id in tasks or not index.has_task(task_id):
                continue
            image = self._jobs.job_image_of(task_id, job_id, image_id)
            index.set_use(task_id, job_id, image_id, None if image is None else image.annotated)

    def _refresh_shared(self, index: ProjectIndex, image_ids: list[str]) -> None:
        """Tags, captions and completed analyses of these pool images, as their records say now.
        A completed analysis never changes: only those the index lacks are read (with their
        predictions' classes and confidences), and those gone are dropped."""
        if not image_ids:
            return
        facts = self._images.shared_facts(image_ids)
        index.set_tags({image_id: sorted(facts[image_id].tag_ids) if image_id in facts else []
                        for image_id in image_ids})
        index.set_captions({image_id: facts[image_id].caption if image_id in facts else None
                            for image_id in image_ids})
        held = index.analyses_of(image_ids)
        wanted = {image_id: set(facts[image_id].analysis_ids) if image_id in facts else set()
                  for image_id in image_ids}
        index.drop_analyses([a for image_id, ids in held.items() for a in ids - wanted[image_id]])
        missing = [a for image_id, ids in wanted.items() for a in ids - held.get(image_id, set())]
        if missing:
            index.put_analyses(completed_facts(self._analyses, missing))

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
