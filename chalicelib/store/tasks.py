"""Tasks, items of their project's partition in ProjectsTable (`pk = <project id>`,
`sk = TASK#<task id>`); jobs and job images have their own tables (store/jobs.py).

A task is `creating` while its jobs are written and `ready` once they all are; only ready tasks
are shown unless asked otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import NotFoundError
from chalicelib.store import changes as change_log
from chalicelib.store.dynamo import conditional, entity, store_errors, table_meta

CREATING, READY = "creating", "ready"


class TaskItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    assignee_id = UnicodeAttribute(null=True)
    split = UnicodeAttribute(default="none")
    status = UnicodeAttribute(default="new")
    state = UnicodeAttribute(default=CREATING)
    total_images = NumberAttribute(default=0)
    job_count = NumberAttribute(default=0)
    chunk_size = NumberAttribute(default=0)
    distribution_order = UnicodeAttribute(default="sequential")
    seed = NumberAttribute(null=True)
    source = UnicodeAttribute(default="file_paths")
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class Task:
    id: str
    project_id: str
    name: str
    description: str | None
    assignee_id: str | None
    split: str
    status: str
    state: str
    total_images: int
    job_count: int
    chunk_size: int
    distribution_order: str
    seed: int | None
    source: str
    created_by: str | None
    created_at: datetime
    updated_at: datetime


# What Explore shows of a task: a change of one is recorded in the project's change log.
EXPLORED = frozenset({"state", "split", "name"})


def task_sk(task_id: str) -> str:
    return f"TASK#{task_id}"


def _to_task(item: TaskItem) -> Task:
    return entity(Task, item, project_id=item.pk)

class TaskRepository:
    def put_task(self, task: Task) -> None:
        item = TaskItem(pk=task.project_id, sk=task_sk(task.id), id=task.id, name=task.name,
                        description=task.description, assignee_id=task.assignee_id, split=task.split,
                        status=task.status, state=task.state, total_images=task.total_images,
                        job_count=task.job_count, chunk_size=task.chunk_size,
                        distribution_order=task.distribution_order, seed=task.seed, source=task.source,
                        created_by=task.created_by, created_at=task.created_at, updated_at=task.updated_at)
        with store_errors("saving a task"):
            item.save(condition=TaskItem.sk.does_not_exist())

    def task(self, project_id: str, task_id: str, *, include_creating: bool = False) -> Task:
        try:
            with store_errors("reading a task"):
                task = _to_task(TaskItem.get(project_id, task_sk(task_id), consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Task '{task_id}' not found") from exc
        if task.state != READY and not include_creating:
            raise NotFoundError(f"Task '{task_id}' not found")
        return task

    def tasks(self, project_id: str, include_all: bool = False) -> list[Task]:
        """The project's tasks that finished creating (`include_all`: also those being built or
        removed), oldest first."""
        with store_errors("listing tasks"):
            tasks = [_to_task(item) for item in TaskItem.query(project_id, TaskItem.sk.startswith("TASK#"),
                                                                consistent_read=True)]
        return sorted((task for task in tasks if include_all or task.state == READY),
                      key=lambda task: (task.created_at, task.id))

    def update_task(self, project_id: str, task_id: str, changes: dict[str, Any]) -> Task:
        actions = []
        for name, value in changes.items():
            attribute = getattr(TaskItem, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        actions.append(TaskItem.updated_at.set(utcnow()))
        with conditional("updating a task", NotFoundError(f"Task '{task_id}' not found")):
            TaskItem(pk=project_id, sk=task_sk(task_id)).update(actions=actions, condition=TaskItem.sk.exists())
        if EXPLORED.intersection(changes):
            change_log.record(change_log.project_stream(project_id), tasks=[task_id])
        return self.task(project_id, task_id, include_creating=True)

    def adjust_total(self, project_id: str, task_id: str, delta: int) -> None:
        """Take images off a task's total (a purged dataset's images left it)."""
        with conditional("counting task images"):
            TaskItem(pk=project_id, sk=task_sk(task_id)).update(
                actions=[TaskItem.total_images.add(delta), TaskItem.updated_at.set(utcnow())],
                condition=TaskItem.sk.exists())

    @staticmethod
    def record_changed(project_id: str, task_ids: list[str]) -> None:
        """Tell the project's Explore index that these tasks' job images changed."""
        if task_ids:
            change_log.record(change_log.project_stream(project_id), tasks=task_ids)

    def delete_task(self, project_id: str, task_id: str) -> None:
        with store_errors("deleting a task"):
            TaskItem(pk=project_id, sk=task_sk(task_id)).delete()
        change_log.record(change_log.project_stream(project_id), tasks=[task_id])
