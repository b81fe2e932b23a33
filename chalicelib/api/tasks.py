"""Tasks of a project: created from share paths, pool images or a filter; cut into jobs."""
from __future__ import annotations

from typing import TYPE_CHECKING

from chalice import Blueprint

from chalicelib.api.operations import operation_out
from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.images import FailedPath
from chalicelib.schemas.operations import OperationOut
from chalicelib.schemas.tasks import (
    JobOut,
    TaskCreatedOut,
    TaskDetailOut,
    TaskFromPaths,
    TaskFromPool,
    TaskOut,
    TaskPatch,
)
from chalicelib.services.container import services

if TYPE_CHECKING:  # the service module pulls half the store in; the route needs it only when called
    from chalicelib.services.tasks import Creation, TaskSpec

bp = Blueprint(__name__)
BASE = "/api/v1/projects/{project_id}/tasks"


def _spec(body) -> TaskSpec:
    from chalicelib.services.tasks import TaskSpec

    return TaskSpec(name=body.name, description=body.description, assignee_id=body.assignee_id,
                    chunk_size=body.chunk_size, distribution_order=body.distribution_order, seed=body.seed,
                    split=body.split)


def _created(creation: Creation):
    if creation.operation is not None:
        out: OperationOut = operation_out(creation.operation)
        return ok(out, f"Task creation of a large selection started; poll /api/v1/operations/{out.id}", 202)
    created = creation.created
    jobs = [JobOut.model_validate(job) for job in created.jobs]
    data = TaskCreatedOut(
        task=TaskOut.model_validate(created.task), jobs=jobs, total_images=created.task.total_images,
        duplicate_count=len(created.duplicates), duplicate_filenames=created.duplicates,
        failed=[FailedPath(**entry) for entry in created.failed],
    )
    return ok(data, f"Task created with {len(jobs)} job(s) and {created.task.total_images} image(s)", 201)


@endpoint(bp, f"{BASE}/create-with-file-paths", "POST", body=TaskFromPaths, response=TaskCreatedOut, status=201,
          also={202: OperationOut})
def create_task_with_file_paths(project_id, identity, body: TaskFromPaths):
    """Register share files/folders, add them to the pool and cut them into jobs (202 + operation if large)."""
    return _created(services().tasks.create_with_file_paths(identity, project_id, _spec(body), body.file_paths))


@endpoint(bp, BASE, "POST", body=TaskFromPool, response=TaskCreatedOut, status=201, also={202: OperationOut})
def create_task(project_id, identity, body: TaskFromPool):
    """Cut pool images (by id, by filter or by saved filter) into jobs."""
    creation = services().tasks.create_from_pool(identity, project_id, _spec(body), body.shared_image_ids,
                                                  body.filter, body.saved_filter_id)
    return _created(creation)


@endpoint(bp, BASE, response=list[TaskOut])
def list_tasks(project_id, identity):
    """The project's tasks, oldest first."""
    tasks = services().tasks.list(identity, project_id)
    return ok([TaskOut.model_validate(task) for task in tasks], f"Found {len(tasks)} task(s)")


@endpoint(bp, f"{BASE}/{{task_id}}", response=TaskDetailOut)
def get_task(project_id, task_id, identity):
    """One task with its jobs (annotators: their jobs)."""
    view = services().tasks.get(identity, project_id, task_id)
    data = TaskDetailOut(**TaskOut.model_validate(view.task).model_dump(),
                         jobs=[JobOut.model_validate(job) for job in view.jobs])
    return ok(data, "Task found")


@endpoint(bp, f"{BASE}/{{task_id}}", "PATCH", body=TaskPatch, response=TaskOut)
def update_task(project_id, task_id, identity, body: TaskPatch):
    """Change name, description, assignee, split or status."""
    changes = body.model_dump(exclude_unset=True)
    for name in ("name", "split", "status"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    task = services().tasks.update(identity, project_id, task_id, changes)
    return ok(TaskOut.model_validate(task), "Task updated")


@endpoint(bp, f"{BASE}/{{task_id}}", "DELETE", response=TaskOut)
def delete_task(project_id, task_id, identity):
    """Delete a task with its jobs, job images and annotations; images stay in the registry and pool."""
    task = services().tasks.delete(identity, project_id, task_id)
    return ok(TaskOut.model_validate(task), f"Task '{task.name}' deleted")


@endpoint(bp, f"{BASE}/{{task_id}}/jobs", response=list[JobOut])
def list_jobs(project_id, task_id, identity):
    """A task's jobs in order (annotators: the jobs assigned to them)."""
    jobs = services().jobs.list(identity, project_id, task_id)
    return ok([JobOut.model_validate(job) for job in jobs], f"Found {len(jobs)} job(s)")
