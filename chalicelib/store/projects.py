"""Projects and their members, in ProjectsTable, one partition per project (`pk = <project id>`).

- `sk = PROJECT`: the project (name, description, label set), also in the sparse `all_projects`
  index (`listing = PROJECT`, `created_at`) that lets an administrator list every project;
- `sk = MEMBER#<user>`: a membership with its role, in the sparse `by_member` index
  (`member_id`, `pk`) that lists a user's projects. Members stay here: every project route reads
  the caller's membership with the project (services/access.py).
The same partition holds the project's tasks (store/tasks.py), saved filters
(store/saved_filters.py) and exports (store/exports.py), so a project page is one Query.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterable

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store.dynamo import Transaction, conditional, entity, store_errors, table_meta

PROJECT_SK = "PROJECT"
LISTING = "PROJECT"


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


class ProjectItem(Model):
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


class MemberItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    member_id = UnicodeAttribute()
    role = UnicodeAttribute()
    added_by = UnicodeAttribute(null=True)
    added_at = UTCDateTimeAttribute()

    by_member = ByMember()


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


def member_sk(user_id: str) -> str:
    return f"MEMBER#{user_id}"


def _to_project(item: ProjectItem) -> Project:
    return entity(Project, item, id=item.pk, created_at=datetime.fromisoformat(item.created_at))

def _to_member(item: MemberItem) -> Member:
    return entity(Member, item, project_id=item.pk, user_id=item.member_id)

class ProjectRepository:
    # Projects ------------------------------------------------------------------------------------

    def create(self, project: Project, owner: Member) -> Project:
        """The project and its first owner, together or not at all."""
        item = ProjectItem(pk=project.id, name=project.name, description=project.description,
                           labels=project.labels, created_by=project.created_by,
                           created_at=project.created_at.isoformat(), updated_at=project.updated_at)
        with Transaction("creating a project", token=f"project-{project.id}") as tx:
            tx.put(item, condition=ProjectItem.pk.does_not_exist())
            tx.put(self._member_item(owner))
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
        with conditional("updating a project", NotFoundError(f"Project '{project_id}' not found")):
            ProjectItem(pk=project_id, sk=PROJECT_SK).update(actions=actions, condition=ProjectItem.pk.exists())
        return self.get(project_id)

    def delete_partition(self, project_id: str) -> None:
        """Remove the project and everything in its partition (members, tasks, filters, exports)."""
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
        changed = ConflictError(f"Membership of '{member.user_id}' changed meanwhile; reload and retry")
        with conditional("saving a membership", changed):
            item.save(condition=condition)

    def remove_member(self, project_id: str, user_id: str, expected_role: str) -> None:
        changed = ConflictError(f"Membership of '{user_id}' changed meanwhile; reload and retry")
        with conditional("removing a membership", changed):
            MemberItem(pk=project_id, sk=member_sk(user_id)).delete(condition=MemberItem.role == expected_role)
