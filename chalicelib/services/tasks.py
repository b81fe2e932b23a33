"""Tasks: cut a selection of pool images into jobs.

A task comes from share paths (registered and pooled on the way, so a folder in S3 becomes a task in one call), from
pool image ids, or from an Explore filter. Creation writes the task hidden (`creating`), then
pool entries, jobs and job images with BatchWriteItem, then shows the task (`ready`); if anything
fails the writes are undone, so no half task is ever visible. Selections too large for an API
call run as an `index` operation whose last step builds the task (the same code).
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable

from aws_lambda_powertools import Logger

from chalicelib.config import Settings
from chalicelib.errors import NotFoundError, ValidationError
from chalicelib.services import paths
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.explore import ExploreService
from chalicelib.services.filters import ImageFilter
from chalicelib.services.identity import Identity
from chalicelib.services.pool import PoolService
from chalicelib.services.saved_filters import SavedFilterService
from chalicelib.services.registry import REGISTER, IndexResult, Listed, RegistryService
from chalicelib.services.share import Selection, ShareService
from chalicelib.store.annotations import AnnotationRepository
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.images import READY as IMAGE_READY
from chalicelib.store.images import Image, ImageRepository
from chalicelib.store.jobs import Job, JobImage, JobRepository, job_image_key
from chalicelib.store.objects import Bucket
from chalicelib.store.operations import Operation
from chalicelib.store.pool import PoolRepository
from chalicelib.store.projects import ProjectRepository
from chalicelib.store.tasks import CREATING, READY, Task, TaskRepository

if TYPE_CHECKING:
    from chalicelib.services.trash import Trash

logger = Logger(child=True)
CREATE_TASK = "create_task"
DELETING = "deleting"
# Starts an `index` operation over a selection: (actor, kind, params, selection) -> Operation.
OperationStarter = Callable[[Identity, str, dict[str, Any], Selection], Operation]


@dataclass(frozen=True)
class TaskSpec:
    name: str
    description: str | None = None
    assignee_id: str | None = None
    chunk_size: int = 50
    distribution_order: str = "sequential"
    seed: int | None = None
    split: str = "none"


@dataclass(frozen=True)
class TaskCreation:
    task: Task
    jobs: list[Job]
    failed: list[dict[str, str]]
    duplicates: list[str] = field(default_factory=list)  # paths that selected an image again


@dataclass(frozen=True)
class Creation:
    """A task created now, or an operation that will create it."""

    created: TaskCreation | None = None
    operation: Operation | None = None


@dataclass(frozen=True)
class TaskView:
    task: Task
    jobs: list[Job]


class TaskService:
    def __init__(self, settings: Settings, access: Access, projects: ProjectRepository, tasks: TaskRepository,
                 pool: PoolService, pool_entries: PoolRepository, jobs: JobRepository, annotations: AnnotationRepository,
                 images: ImageRepository, share: ShareService, registry: RegistryService, explore: ExploreService,
                 activity: ActivityService, versions: Bucket, saved_filters: SavedFilterService,
                 start_operation: OperationStarter, trash: "Trash | None" = None) -> None:
        self._trash = trash
        self._settings = settings
        self._access = access
        self._projects = projects
        self._tasks = tasks
        self._pool = pool
        self._pool_entries = pool_entries
        self._jobs = jobs
        self._annotations = annotations
        self._images = images
        self._share = share
        self._registry = registry
        self._explore = explore
        self._activity = activity
        self._versions = versions
        self._saved_filters = saved_filters
        self._start_operation = start_operation

    # Creation ------------------------------------------------------------------------------------

    def create_with_file_paths(self, actor: Identity, project_id: str, spec: TaskSpec,
                               file_paths: list[str]) -> Creation:
        """Register what is unregistered, pool it, cut it into jobs, in one call."""
        self._access.require(actor, project_id, "tasks.write")
        self._check_assignee(project_id, spec.assignee_id)
        limit = self._settings.task_sync_limit
        selection = self._share.expand(file_paths, recursive=True, max_keys=limit, named_files=True)
        self._refuse_hidden(selection.keys, "file_paths")
        if not selection.keys:
            named = ", ".join(repr(path) for path in file_paths[:10])
            raise ValidationError(f"No file at {named}, and no folder there holds any: nothing to make a task of",
                                  [{"field": f"file_paths.{n}", "location": "body", "type": "empty",
                                    "message": f"{path!r}: no file, and no folder holding files"}
                                   for n, path in enumerate(file_paths[:100])])
        if selection.complete and len(selection.keys) <= limit:
            existing = self._images.find_by_keys(selection.keys)
            unregistered = [key for key in selection.keys if key not in existing]
            if len(unregistered) <= self._settings.register_sync_limit:
                result = (self._registry.index((Listed(key) for key in unregistered), REGISTER, actor.sub)
                          if unregistered else IndexResult())
                images, failed = self._usable(selection.keys, existing, result)
                created = self._create(actor.sub, project_id, spec, images, failed, new_id(), "file_paths")
                return Creation(created=replace(created, duplicates=selection.duplicates))
        return Creation(operation=self._background(actor, project_id, spec, selection, "file_paths"))

    def create_from_pool(self, actor: Identity, project_id: str, spec: TaskSpec, image_ids: list[str] | None,
                         image_filter: ImageFilter | None, saved_filter_id: str | None = None) -> Creation:
        """A task from pool images given by id (in that order) or by a filter or saved filter (in
        Explore order)."""
        self._access.require(actor, project_id, "tasks.write")
        image_filter = self._saved_filters.resolve(actor, project_id, image_filter, saved_filter_id)
        self._check_assignee(project_id, spec.assignee_id)
        if image_ids is not None:
            image_ids = list(dict.fromkeys(image_ids))
            self._pool.require_members(project_id, image_ids)
            found = self._images.find(image_ids)
            keys = [found[image].file_path for image in image_ids if image in found]
            self._refuse_hidden(keys, "shared_image_ids")
            source = "pool"
        else:
            keys = [entry.file_path for entry in self._explore.select(project_id, image_filter).entries]
            source = "filter"
        if not keys:
            raise ValidationError("The selection is empty: no pool image matches",
                                  [{"field": "filter" if image_ids is None else "shared_image_ids",
                                    "message": "selects no image"}])
        if len(keys) <= self._settings.task_sync_limit:
            existing = self._images.find_by_keys(keys)
            images, failed = self._usable(keys, existing, IndexResult())
            return Creation(created=self._create(actor.sub, project_id, spec, images, failed, new_id(), source))
        return Creation(operation=self._background(actor, project_id, spec, Selection(keys=keys, pending=[]), source))

    def _refuse_hidden(self, keys: list[str], field: str) -> None:
        """422 naming the images of deleted datasets among `keys` (they are in the trash, not usable)."""
        hidden = self._trash.hidden_now(keys) if self._trash is not None else set()
        if hidden:
            named = sorted(hidden)
            raise ValidationError(
                f"{len(named)} image(s) belong to a deleted dataset: {', '.join(named[:5])}"
                + (" …" if len(named) > 5 else "") + "; restore the dataset to use them",
                [{"field": field, "message": f"'{key}' is in a deleted dataset"} for key in named[:100]])

    def _background(self, actor: Identity, project_id: str, spec: TaskSpec, selection: Selection,
                    source: str) -> Operation:
        params = {"project_id": project_id, "spec": spec.__dict__, "source": source}
        return self._start_operation(actor, CREATE_TASK, params, selection)

    def complete(self, operation: Operation, keys: list[str], failed: list[dict[str, str]]) -> dict[str, Any]:
        """Last step of a background creation: build the task with the operation's id (re-runnable)."""
        params = operation.params
        project_id, task_id = params["project_id"], operation.id
        task = self._existing(project_id, task_id)
        if task is not None and task.state == READY:
            return _summary(task, self._jobs.of_task(task_id), failed)
        if task is not None:
            self._discard(project_id, task_id)
        spec = TaskSpec(**params["spec"])
        images, failed = self._usable(keys, self._images.find_by_keys(keys), IndexResult(failed=list(failed)))
        created = self._create(operation.created_by, project_id, spec, images, failed, task_id, params["source"])
        return _summary(created.task, created.jobs, created.failed)

    def ensure_task(self, actor_sub: str | None, project_id: str, task_id: str, spec: TaskSpec,
                    images: list[Image], source: str) -> TaskCreation:
        """The task `task_id` of `images` (a dataset import's), created unless it is there already:
        a step that runs again finds it ready, or discards a half-made one and makes it anew."""
        task = self._existing(project_id, task_id)
        if task is not None and task.state == READY:
            jobs = sorted(self._jobs.of_task(task_id), key=lambda job: job.sequence_number)
            return TaskCreation(task, jobs, [])
        if task is not None:
            self._discard(project_id, task_id)
        return self._create(actor_sub, project_id, spec, images, [], task_id, source)

    def abandon(self, operation: Operation) -> None:
        """The failure path of a background creation: remove whatever part of the task exists."""
        project_id, task_id = operation.params["project_id"], operation.id
        if self._existing(project_id, task_id) is not None:
            self._discard(project_id, task_id)

    def _usable(self, keys: list[str], existing: dict[str, Image],
                result: IndexResult) -> tuple[list[Image], list[dict[str, str]]]:
        """The images of `keys` that can go into a task, in order, and why the others cannot."""
        failed = {entry["file_path"]: entry["reason"] for entry in result.failed}
        known = {**existing, **{image.file_path: image for image in result.registered + result.refreshed}}
        # Registered by the ingest handler between our read and the registration (its S3
        # notification raced this call): read those records now.
        raced = [key for key in result.already_existed if key not in known]
        if raced:
            known.update(self._images.find_by_keys(raced))
        images = []
        for key in dict.fromkeys(keys):
            image = known.get(key)
            if key in failed:
                continue
            unsafe = paths.unsafe_key_reason(key)
            if unsafe:
                failed[key] = unsafe  # even a record made before keys were checked is no path
            elif image is None:
                failed[key] = "not found in the share"
            elif image.status != IMAGE_READY:
                failed[key] = image.reason or f"image is {image.status}"
            else:
                images.append(image)
        return images, [{"file_path": key, "reason": reason} for key, reason in failed.items()]

    def _create(self, actor_sub: str | None, project_id: str, spec: TaskSpec, images: list[Image],
                failed: list[dict[str, str]], task_id: str, source: str) -> TaskCreation:
        if not images:
            named = "; ".join(f"{entry['file_path']} ({entry['reason']})" for entry in failed[:5])
            more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
            raise ValidationError(f"None of the selected paths can be used for a task: {named}{more}",
                                  [{"field": "file_paths", **entry} for entry in failed[:100]])
        order = list(images)
        seed = spec.seed
        if spec.distribution_order == "random":
            if seed is None:  # chosen here and kept on the task, so any task can be reproduced
                seed = random.SystemRandom().randrange(2**31)
            random.Random(seed).shuffle(order)
        now = utcnow()
        job_count = math.ceil(len(order) / spec.chunk_size)
        task = Task(id=task_id, project_id=project_id, name=spec.name, description=spec.description,
                    assignee_id=spec.assignee_id, split=spec.split, status="new", state=CREATING,
                    total_images=len(order), job_count=job_count, chunk_size=spec.chunk_size,
                    distribution_order=spec.distribution_order, seed=seed, source=source, created_by=actor_sub,
                    created_at=now, updated_at=now)
        jobs, job_images = [], []
        for number in range(job_count):
            part = order[number * spec.chunk_size : (number + 1) * spec.chunk_size]
            job = Job(id=new_id(), task_id=task_id, project_id=project_id, sequence_number=number,
                      assignee_id=spec.assignee_id, status="new", total_images=len(part), rev=0,
                      created_at=now, updated_at=now)
            jobs.append(job)
            job_images += [JobImage(task_id=task_id, job_id=job.id, image_id=image.id, project_id=project_id,
                                    sequence_number=position) for position, image in enumerate(part)]
        self._tasks.put_task(task)
        added: list[str] = []
        try:
            added = self._pool.ensure(project_id, order, actor_sub)
            self._jobs.write(jobs, job_images)
            task = self._tasks.update_task(project_id, task_id, {"state": READY})
        except Exception:
            logger.exception("task creation failed; undoing its writes", extra={"task_id": task_id})
            self._undo(project_id, task_id, jobs, job_images, added)
            raise
        self._activity.record(Identity(sub=actor_sub) if actor_sub else None, "task", task_id, "created",
                              project_id=project_id,
                              summary=f'Created task "{spec.name}" with {job_count} job(s) and {len(order)} image(s)',
                              details={"jobs": job_count, "images": len(order), "failed": len(failed),
                                       "source": source})
        return TaskCreation(task, jobs, failed)

    def _undo(self, project_id: str, task_id: str, jobs: list[Job], job_images: list[JobImage],
              added: list[str]) -> None:
        """Remove what a failed creation wrote. Each step is tried on its own; unless all succeed the
        task item stays `creating` — never shown, and removed with the rest when deleted later."""
        steps = (
            lambda: self._jobs.delete_job_images(task_id, [job_image_key(image.job_id, image.image_id)
                                                           for image in job_images]),
            lambda: self._jobs.delete_jobs([job.id for job in jobs]),
            lambda: self._pool_entries.remove_all(project_id, added),
        )
        undone = True
        for step in steps:
            try:
                step()
            except Exception:
                logger.exception("undoing a failed task creation failed", extra={"task_id": task_id})
                undone = False
        if undone:
            self._tasks.delete_task(project_id, task_id)

    # Reading and changing ------------------------------------------------------------------------

    def list(self, actor: Identity, project_id: str) -> list[Task]:
        self._access.require(actor, project_id, "tasks.read")
        return self._tasks.tasks(project_id)

    def get(self, actor: Identity, project_id: str, task_id: str) -> TaskView:
        caller = self._access.require(actor, project_id, "tasks.read")
        task = self._tasks.task(project_id, task_id)
        jobs = [job for job in self._jobs.of_task(task_id) if caller.may("jobs.read", job)]
        return TaskView(task, jobs)

    def update(self, actor: Identity, project_id: str, task_id: str, changes: dict[str, Any]) -> Task:
        self._access.require(actor, project_id, "tasks.write")
        task = self._tasks.task(project_id, task_id)
        if changes.get("assignee_id"):
            self._check_assignee(project_id, changes["assignee_id"])
        if not changes:
            return task
        updated = self._tasks.update_task(project_id, task_id, changes)
        described = ", ".join(f"{name}: {getattr(task, name)} → {value}" if name in ("split", "status")
                              else name for name, value in sorted(changes.items()))
        self._activity.record(actor, "task", task_id, "updated", project_id=project_id,
                              summary=f'Changed task "{updated.name}" ({described})',
                              details={"changes": {name: value for name, value in changes.items()}})
        return updated

    def delete(self, actor: Identity, project_id: str, task_id: str) -> Task:
        """Delete a task with its jobs, job images, annotations and versions; the images stay."""
        self._access.require(actor, project_id, "tasks.write")
        task = self._tasks.task(project_id, task_id, include_creating=True)
        self._discard(project_id, task_id)
        self._activity.record(actor, "task", task_id, "deleted", project_id=project_id,
                              summary=f'Deleted task "{task.name}"', details={"images": task.total_images})
        return task

    def purge_project(self, project_id: str) -> None:
        """Every task of a project and its pool (project deletion; access checked by the caller)."""
        for task in self._tasks.tasks(project_id, include_all=True):
            self._discard(project_id, task.id)
        self._pool_entries.delete_pool(project_id)

    def _discard(self, project_id: str, task_id: str) -> None:
        # Hidden first, so a crash half-way leaves nothing visible; running it again finishes the job.
        self._tasks.update_task(project_id, task_id, {"state": DELETING})
        job_ids = self._jobs.delete_task(task_id)
        self._annotations.delete_jobs(job_ids)
        self._versions.delete_prefix(f"projects/{project_id}/tasks/{task_id}/")
        self._tasks.delete_task(project_id, task_id)

    def _existing(self, project_id: str, task_id: str) -> Task | None:
        try:
            return self._tasks.task(project_id, task_id, include_creating=True)
        except NotFoundError:
            return None

    def _check_assignee(self, project_id: str, assignee_id: str | None) -> None:
        if assignee_id and self._projects.member(project_id, assignee_id) is None:
            raise ValidationError(f"Assignee '{assignee_id}' is not a member of this project",
                                  [{"field": "assignee_id", "message": "not a project member"}])


def _summary(task: Task, jobs: list[Job], failed: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "task_id": task.id, "name": task.name, "total_images": task.total_images, "job_count": len(jobs),
        "seed": task.seed, "failed": failed, "total_failed": len(failed),
        "message": f"Task created with {len(jobs)} job(s) and {task.total_images} image(s)",
    }

