"""Projects and what belongs to one project alone, in one table partitioned by project.

Items of a project's partition (`pk = <project id>`):
- `sk = PROJECT`: the project (name, description, label set), also in the sparse `all_projects`
  index (`listing = PROJECT`, `created_at`) that lets an administrator list every project;
- `sk = MEMBER#<user>`: a membership with its role, in the sparse `by_member` index
  (`member_id`, `pk`) that lists a user's projects;
- `sk = TASK#<task id>`: a task (jobs and job images have their own tables);
- `sk = FILTER#<filter id>`: a saved filter.
A project page (members, tasks, filters) is therefore one Query of one partition.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.connection import Connection
from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, UpdateError
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.transactions import TransactWrite

from chalicelib.errors import ConflictError, NotFoundError, StoreError
from chalicelib.store.base import TableModel, store_errors, table_meta, utcnow

PROJECT_SK = "PROJECT"
LISTING = "PROJECT"
CREATING, READY = "creating", "ready"


class AllProjects(GlobalSecondaryIndex):
    class Meta:
        index_name = "all_projects"
        projection = AllProjection()

    listing = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class ByMember(GlobalSecondaryIndex):
    class Meta:
        index_name = "by_member"
        projection = AllProjection()

    member_id = UnicodeAttribute(hash_key=True)
    pk = UnicodeAttribute(range_key=True)


class ProjectItem(TableModel):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=PROJECT_SK)
    listing = UnicodeAttribute(default=LISTING)
    name = UnicodeAttribute()
    description = UnicodeAttribute(null=True)
    labels = JSONAttribute(default=list)
    created_by = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()  # ISO-8601: also the sort key of `all_projects`
    updated_at = UTCDateTimeAttribute()
    rev = NumberAttribute(default=0)

    all_projects = AllProjects()


class MemberItem(TableModel):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    member_id = UnicodeAttribute()
    role = UnicodeAttribute()
    added_by = UnicodeAttribute(null=True)
    added_at = UTCDateTimeAttribute()

    by_member = ByMember()


class TaskItem(TableModel):
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


class FilterItem(TableModel):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    filter = JSONAttribute()
    created_by = UnicodeAttribute(null=True)
    created_at = UTCDateTimeAttribute()
    updated_at = UTCDateTimeAttribute()


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str | None
    labels: list[dict[str, Any]]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class Member:
    project_id: str
    user_id: str
    role: str
    added_by: str | None
    added_at: datetime


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


@dataclass(frozen=True)
class SavedFilter:
    id: str
    project_id: str
    name: str
    filter: dict[str, Any]
    created_by: str | None
    created_at: datetime
    updated_at: datetime


def member_sk(user_id: str) -> str:
    return f"MEMBER#{user_id}"


def task_sk(task_id: str) -> str:
    return f"TASK#{task_id}"


def filter_sk(filter_id: str) -> str:
    return f"FILTER#{filter_id}"


def _to_project(item: ProjectItem) -> Project:
    return Project(id=item.pk, name=item.name, description=item.description, labels=list(item.labels or []),
                   created_by=item.created_by, created_at=datetime.fromisoformat(item.created_at),
                   updated_at=item.updated_at)


def _to_member(item: MemberItem) -> Member:
    return Member(project_id=item.pk, user_id=item.member_id, role=item.role, added_by=item.added_by,
                  added_at=item.added_at)


def _to_task(item: TaskItem) -> Task:
    return Task(id=item.id, project_id=item.pk, name=item.name, description=item.description,
                assignee_id=item.assignee_id, split=item.split, status=item.status, state=item.state,
                total_images=int(item.total_images or 0), job_count=int(item.job_count or 0),
                chunk_size=int(item.chunk_size or 0), distribution_order=item.distribution_order,
                seed=None if item.seed is None else int(item.seed), source=item.source,
                created_by=item.created_by, created_at=item.created_at, updated_at=item.updated_at)


def _to_filter(item: FilterItem) -> SavedFilter:
    return SavedFilter(id=item.id, project_id=item.pk, name=item.name, filter=dict(item.filter or {}),
                       created_by=item.created_by, created_at=item.created_at, updated_at=item.updated_at)


def _connection() -> Connection:
    return ProjectItem._get_connection().connection


def _update(item: TableModel, actions: list, condition, missing: str) -> None:
    try:
        item.update(actions=actions, condition=condition)
    except UpdateError as exc:
        if exc.cause_response_code == "ConditionalCheckFailedException":
            raise NotFoundError(missing) from exc
        raise StoreError(f"updating {missing.split(' ')[0].lower()} failed: {exc.msg}") from exc


class ProjectRepository:
    # Projects ------------------------------------------------------------------------------------

    def create(self, project: Project, owner: Member) -> Project:
        """The project and its first owner, together or not at all."""
        item = ProjectItem(pk=project.id, name=project.name, description=project.description,
                           labels=project.labels, created_by=project.created_by,
                           created_at=project.created_at.isoformat(), updated_at=project.updated_at)
        with store_errors("creating a project"):
            with TransactWrite(connection=_connection(), client_request_token=f"project-{project.id}") as tx:
                tx.save(item, condition=ProjectItem.pk.does_not_exist())
                tx.save(self._member_item(owner))
        return _to_project(item)

    def get(self, project_id: str) -> Project:
        try:
            with store_errors("reading a project"):
                return _to_project(ProjectItem.get(project_id, PROJECT_SK, consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Project '{project_id}' not found") from exc

    def find(self, project_ids: Iterable[str]) -> dict[str, Project]:
        keys = [(project_id, PROJECT_SK) for project_id in dict.fromkeys(project_ids)]
        if not keys:
            return {}
        with store_errors("reading projects"):
            return {item.pk: _to_project(item) for item in ProjectItem.batch_get(keys)}

    def all(self) -> list[Project]:
        """Every project, newest first (the sparse `all_projects` index)."""
        with store_errors("listing projects"):
            return [_to_project(item) for item in ProjectItem.all_projects.query(LISTING, scan_index_forward=False)]

    def update(self, project_id: str, changes: dict[str, Any]) -> Project:
        actions = [getattr(ProjectItem, name).set(value) if value is not None or name != "description"
                   else ProjectItem.description.remove() for name, value in changes.items()]
        actions += [ProjectItem.updated_at.set(utcnow()), ProjectItem.rev.add(1)]
        _update(ProjectItem(pk=project_id, sk=PROJECT_SK), actions, ProjectItem.pk.exists(),
                f"Project '{project_id}' not found")
        return self.get(project_id)

    def delete_partition(self, project_id: str) -> None:
        """Remove the project and everything in its partition (members, tasks, filters)."""
        with store_errors("deleting a project"):
            keys = [(item.pk, item.sk) for item in
                    ProjectItem.query(project_id, attributes_to_get=["pk", "sk"])]
            with ProjectItem.batch_write() as batch:
                for pk, sk in keys:
                    batch.delete(ProjectItem(pk=pk, sk=sk))

    # Members -------------------------------------------------------------------------------------

    @staticmethod
    def _member_item(member: Member) -> MemberItem:
        return MemberItem(pk=member.project_id, sk=member_sk(member.user_id), member_id=member.user_id,
                          role=member.role, added_by=member.added_by, added_at=member.added_at)

    def member(self, project_id: str, user_id: str) -> Member | None:
        try:
            with store_errors("reading a membership"):
                return _to_member(MemberItem.get(project_id, member_sk(user_id), consistent_read=True))
        except DoesNotExist:
            return None

    def members(self, project_id: str) -> list[Member]:
        with store_errors("listing members"):
            return [_to_member(item) for item in MemberItem.query(
                project_id, MemberItem.sk.startswith("MEMBER#"), consistent_read=True)]

    def memberships(self, user_id: str) -> list[Member]:
        with store_errors("listing a user's projects"):
            return [_to_member(item) for item in MemberItem.by_member.query(user_id)]

    def put_member(self, member: Member, *, expected_role: str | None) -> None:
        """Add a member (`expected_role` None: only if absent) or change a role (only if it is still
        `expected_role`): two owners editing the member list cannot silently overwrite each other."""
        item = self._member_item(member)
        if expected_role is None:
            condition = MemberItem.sk.does_not_exist()
        else:
            condition = MemberItem.role == expected_role
        try:
            item.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConflictError(f"Membership of '{member.user_id}' changed meanwhile; reload and retry") from exc
            raise StoreError(f"saving a membership failed: {exc.msg}") from exc

    def remove_member(self, project_id: str, user_id: str, expected_role: str) -> None:
        try:
            MemberItem(pk=project_id, sk=member_sk(user_id)).delete(condition=MemberItem.role == expected_role)
        except DeleteError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConflictError(f"Membership of '{user_id}' changed meanwhile; reload and retry") from exc
            raise StoreError(f"removing a membership failed: {exc.msg}") from exc

    # Tasks ---------------------------------------------------------------------------------------

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
        _update(TaskItem(pk=project_id, sk=task_sk(task_id)), actions, TaskItem.sk.exists(),
                f"Task '{task_id}' not found")
        return self.task(project_id, task_id, include_creating=True)

    def delete_task(self, project_id: str, task_id: str) -> None:
        with store_errors("deleting a task"):
            TaskItem(pk=project_id, sk=task_sk(task_id)).delete()

    # Saved filters -------------------------------------------------------------------------------

    def put_filter(self, saved: SavedFilter, *, create: bool) -> SavedFilter:
        item = FilterItem(pk=saved.project_id, sk=filter_sk(saved.id), id=saved.id, name=saved.name,
                          filter=saved.filter, created_by=saved.created_by, created_at=saved.created_at,
                          updated_at=saved.updated_at)
        condition = FilterItem.sk.does_not_exist() if create else FilterItem.sk.exists()
        try:
            item.save(condition=condition)
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFoundError(f"Saved filter '{saved.id}' not found") from exc
            raise StoreError(f"saving a filter failed: {exc.msg}") from exc
        return _to_filter(item)

    def filter(self, project_id: str, filter_id: str) -> SavedFilter:
        try:
            with store_errors("reading a saved filter"):
                return _to_filter(FilterItem.get(project_id, filter_sk(filter_id), consistent_read=True))
        except DoesNotExist as exc:
            raise NotFoundError(f"Saved filter '{filter_id}' not found") from exc

    def filters(self, project_id: str) -> list[SavedFilter]:
        with store_errors("listing saved filters"):
            return [_to_filter(item) for item in FilterItem.query(
                project_id, FilterItem.sk.startswith("FILTER#"), consistent_read=True)]

    def delete_filter(self, project_id: str, filter_id: str) -> None:
        try:
            FilterItem(pk=project_id, sk=filter_sk(filter_id)).delete(condition=FilterItem.sk.exists())
        except DeleteError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise NotFoundError(f"Saved filter '{filter_id}' not found") from exc
            raise StoreError(f"deleting a filter failed: {exc.msg}") from exc
