"""Projects, their label sets and members, and each project's activity timeline."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services import cursors
from chalicelib.services.access import ROLES, Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.store.activity import ActivityEntry
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.store.projects import Member, Project, ProjectRepository
from chalicelib.store.users import UserRepository


@dataclass(frozen=True)
class ProjectView:
    project: Project
    role: str


def _check_labels(labels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: set[str] = set()
    for label in labels:
        name = label["name"].casefold()
        if name in seen:
            raise ValidationError(f"Label '{label['name']}' appears twice in the label set",
                                  [{"field": "labels", "message": f"duplicate label {label['name']!r}"}])
        seen.add(name)
    return labels


class ProjectPurger(Protocol):
    """A service that owns part of a project (its tasks and pool, its exports) and removes it."""

    def purge_project(self, project_id: str) -> None: ...


class ProjectService:
    def __init__(self, access: Access, projects: ProjectRepository, users: UserRepository,
                 activity: ActivityService, purgers: Sequence[ProjectPurger] = ()) -> None:
        self._access = access
        self._projects = projects
        self._users = users
        self._activity = activity
        self._purgers = tuple(purgers)

    # Projects ------------------------------------------------------------------------------------

    def create(self, actor: Identity, name: str, description: str | None, labels: list[dict[str, Any]]) -> ProjectView:
        self._access.require_global(actor, "projects.create", what="creating projects")
        now = utcnow()
        project = Project(id=new_id(), name=name, description=description, labels=_check_labels(labels),
                          created_by=actor.sub, created_at=now, updated_at=now)
        owner = Member(project_id=project.id, user_id=actor.sub, role="owner", added_by=actor.sub, added_at=now)
        project = self._projects.create(project, owner)
        self._activity.record(actor, "project", project.id, "created", project_id=project.id,
                              summary=f'Created project "{name}"')
        return ProjectView(project, "owner")

    def list(self, actor: Identity) -> list[ProjectView]:
        """The caller's projects with their role, newest first (administrators: every project)."""
        if actor.is_admin:
            return [ProjectView(project, "owner") for project in self._projects.all()]
        roles = {member.project_id: member.role for member in self._projects.memberships(actor.sub)}
        found = self._projects.find(roles)
        views = [ProjectView(found[project_id], role) for project_id, role in roles.items() if project_id in found]
        return sorted(views, key=lambda view: (view.project.created_at, view.project.id), reverse=True)

    def get(self, actor: Identity, project_id: str) -> ProjectView:
        caller = self._access.require(actor, project_id, "project.read")
        return ProjectView(caller.project, caller.role)

    def update(self, actor: Identity, project_id: str, changes: dict[str, Any]) -> ProjectView:
        caller = self._access.require(actor, project_id, "project.update")
        if "labels" in changes:
            _check_labels(changes["labels"])
        if not changes:
            return ProjectView(caller.project, caller.role)
        project = self._projects.update(project_id, changes)
        self._activity.record(actor, "project", project_id, "updated", project_id=project_id,
                              summary=f"Changed {', '.join(sorted(changes))}", details={"fields": sorted(changes)})
        return ProjectView(project, caller.role)

    def delete(self, actor: Identity, project_id: str) -> ProjectView:
        """Delete the project with its tasks, jobs, annotations, pool, members and filters.

        The registry images stay: they belong to the share, not to the project.
        """
        caller = self._access.require(actor, project_id, "project.delete")
        for purger in self._purgers:
            purger.purge_project(project_id)
        self._projects.delete_partition(project_id)
        self._activity.record(actor, "project", project_id, "deleted", project_id=project_id,
                              summary=f'Deleted project "{caller.project.name}"')
        return ProjectView(caller.project, caller.role)

    # Members -------------------------------------------------------------------------------------

    def members(self, actor: Identity, project_id: str) -> list[Member]:
        self._access.require(actor, project_id, "members.read")
        return sorted(self._projects.members(project_id), key=lambda m: (ROLES.index(m.role), m.user_id))

    def set_member(self, actor: Identity, project_id: str, user_id: str, role: str) -> tuple[Member, bool]:
        """Add `user_id` with `role`, or change their role; returns the membership and whether it is new."""
        self._access.require(actor, project_id, "members.manage")
        try:
            self._users.get(user_id)
        except NotFoundError as exc:
            raise NotFoundError(f"User '{user_id}' not found: they must sign in once before joining a project",
                                [{"field": "user_id", "message": "unknown user"}]) from exc
        current = self._projects.member(project_id, user_id)
        if current is not None and current.role == role:
            return current, False
        if current is not None and current.role == "owner":
            self._keep_an_owner(project_id, user_id)
        member = Member(project_id=project_id, user_id=user_id, role=role, added_by=actor.sub, added_at=utcnow())
        self._projects.put_member(member, expected_role=current.role if current else None)
        action = "member_added" if current is None else "member_role_changed"
        summary = (f"Added {user_id} as {role}" if current is None
                   else f"Changed {user_id}'s role: {current.role} → {role}")
        self._activity.record(actor, "member", user_id, action, project_id=project_id, summary=summary,
                              details={"role": role, "previous_role": current.role if current else None})
        return member, current is None

    def change_role(self, actor: Identity, project_id: str, user_id: str, role: str) -> Member:
        """Change a member's role (404 for a user who is not a member: this never adds anyone)."""
        self._access.require(actor, project_id, "members.manage")
        current = self._projects.member(project_id, user_id)
        if current is None:
            raise NotFoundError(f"User '{user_id}' is not a member of this project; add them with "
                                f"POST /api/v1/projects/{project_id}/members")
        if current.role == role:
            return current
        if current.role == "owner":
            self._keep_an_owner(project_id, user_id)
        member = Member(project_id=project_id, user_id=user_id, role=role, added_by=current.added_by,
                        added_at=current.added_at)
        # Conditional on the role read: a member removed meanwhile is a 409, never re-added.
        self._projects.put_member(member, expected_role=current.role)
        self._activity.record(actor, "member", user_id, "member_role_changed", project_id=project_id,
                              summary=f"Changed {user_id}'s role: {current.role} → {role}",
                              details={"role": role, "previous_role": current.role})
        return member

    def remove_member(self, actor: Identity, project_id: str, user_id: str) -> Member:
        caller = self._access.admit(actor, project_id)
        if user_id != actor.sub:  # anyone may leave; only owners remove others
            self._access.require(actor, project_id, "members.manage")
        current = self._projects.member(project_id, user_id)
        if current is None:
            raise NotFoundError(f"User '{user_id}' is not a member of this project")
        if current.role == "owner":
            self._keep_an_owner(project_id, user_id)
        self._projects.remove_member(project_id, user_id, current.role)
        self._activity.record(caller.identity, "member", user_id, "member_removed", project_id=project_id,
                              summary=f"Removed {user_id} ({current.role})", details={"role": current.role})
        return current

    def _keep_an_owner(self, project_id: str, leaving: str) -> None:
        owners = [m for m in self._projects.members(project_id) if m.role == "owner" and m.user_id != leaving]
        if not owners:
            raise ConflictError("A project needs at least one owner: make someone else owner first")

    # Activity ------------------------------------------------------------------------------------

    def activity(self, actor: Identity, project_id: str, page_size: int,
                 cursor: str | None) -> tuple[list[ActivityEntry], str | None]:
        """The timeline, newest first; pass the returned cursor to read on."""
        self._access.require(actor, project_id, "activity.read")
        after = cursors.decode(cursor, "activity", cursors.text) if cursor else None
        entries, last = self._activity.newest(project_id, page_size, after)
        return entries, cursors.encode("activity", last) if last else None

