"""Who may do what in a project: the one role × action table, and its enforcement.

Every project-scoped service call starts with `Access.require`. A caller who is not a member
(and not an administrator) gets 404 whatever they ask, so a project's existence never leaks; a
member whose role lacks the action gets 403. `ASSIGNED` grants an action only on jobs assigned to
the caller: an annotator works on their own jobs and nothing else.
The role-matrix test (tests/functional/test_access.py) is generated from `RULES`.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chalicelib.errors import ForbiddenError, NotFoundError
from chalicelib.services.identity import Identity
from chalicelib.store.jobs import Job
from chalicelib.store.projects import Project, ProjectRepository

ROLES = ("owner", "editor", "annotator", "viewer")


class Grant(Enum):
    NONE = "none"
    ANY = "any"
    ASSIGNED = "assigned"


N, A, S = Grant.NONE, Grant.ANY, Grant.ASSIGNED

#                          owner editor annotator viewer
RULES: dict[str, tuple[Grant, Grant, Grant, Grant]] = {
    "project.read":       (A, A, A, A),
    "project.update":     (A, A, N, N),
    "project.delete":     (A, N, N, N),
    "members.read":       (A, A, A, A),
    "members.manage":     (A, N, N, N),
    "pool.read":          (A, A, A, A),
    "pool.write":         (A, A, N, N),
    "tasks.read":         (A, A, A, A),
    "tasks.write":        (A, A, N, N),
    "jobs.read":          (A, A, S, A),
    "jobs.assign":        (A, A, N, N),
    "jobs.status":        (A, A, S, N),
    "annotations.read":   (A, A, S, A),
    "annotations.write":  (A, A, S, N),
    "versions.create":    (A, A, S, N),
    "filters.read":       (A, A, A, A),
    "filters.write":      (A, A, N, N),
    "activity.read":      (A, A, A, A),
    "exports.read":       (A, A, N, A),
    "exports.write":      (A, A, N, N),
}


def grant(role: str, action: str) -> Grant:
    return RULES[action][ROLES.index(role)]


@dataclass(frozen=True)
class Caller:
    """A caller admitted to a project: their role there (`owner` for administrators)."""

    identity: Identity
    project: Project
    role: str

    def may(self, action: str, job: Job | None = None) -> bool:
        allowed = grant(self.role, action)
        if allowed is Grant.ASSIGNED:
            return job is not None and job.assignee_id == self.identity.sub
        return allowed is Grant.ANY


class Access:
    def __init__(self, projects: ProjectRepository) -> None:
        self._projects = projects

    def require(self, actor: Identity, project_id: str, action: str, job: Job | None = None) -> Caller:
        """Admit `actor` to `action` in the project (and on `job`), or raise 404 / 403."""
        caller = self.admit(actor, project_id)
        if not caller.may(action, job):
            what = action.replace(".", " ").replace("_", " ")
            scope = " on jobs not assigned to you" if grant(caller.role, action) is Grant.ASSIGNED else ""
            raise ForbiddenError(f"Your role '{caller.role}' does not allow {what}{scope}")
        return caller

    def admit(self, actor: Identity, project_id: str) -> Caller:
        """The caller's standing in the project; 404 for non-members, as if it did not exist."""
        member = None if actor.is_admin else self._projects.member(project_id, actor.sub)
        if member is None and not actor.is_admin:
            raise NotFoundError(f"Project '{project_id}' not found")
        project = self._projects.get(project_id)
        return Caller(identity=actor, project=project, role="owner" if actor.is_admin else member.role)
