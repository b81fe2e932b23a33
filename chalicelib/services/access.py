"""Who may do what: the role × action tables, for projects and for global resources, and their enforcement.

Projects (`RULES`). Every project-scoped service call starts with `Access.require`. A caller who
is not a member (and not an administrator) gets 404 whatever they ask, so a project's existence
never leaks; a member whose role lacks the action gets 403. `ASSIGNED` grants an action only on
jobs assigned to the caller: an annotator works on their own jobs and nothing else. Finishing a
review (`review → done`, or sending the job back `review → in_progress`) is `jobs.review`, an
editor's and owner's action: an annotator submits their work, they do not approve it.
Comments: annotators, editors and owners write and change or delete their own (`comments.write`);
editors and owners also edit or delete anyone's (`comments.moderate`); viewers read.

Global resources (`GLOBAL_RULES`: the registry's images, their metadata, masks and tags, the tag
list, the share, creating projects) are shared by everyone, so the global role comes from the
token's groups, as organisation roles do in CVAT or Label Studio:
- `admin` (the `admin_group`): everything, including what touches everyone at once: reindexing,
  rebuilding the Explore index,
  registering the whole share or more than `register_user_limit` keys, deleting a tag in use
  (`force`), changing or deleting anybody's tag;
- `viewer` (the `viewer_group`, or anyone outside `contributor_group` when that is set): reads only;
- `contributor` (every other signed-in user): registers and uploads, creates tags, projects and
  datasets (a dataset is its owner's: others do not see it),
  tags and captions images, edits image metadata and masks, and changes or deletes the tags they created
  (`OWN`: granted on what the caller created).
Reading (`global.read`) is every valid token's right, checked by the authorizer. A refusal is 403
naming the role and the action. The matrix tests (tests/functional/test_access.py) are generated
from both tables.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from chalicelib.errors import ForbiddenError, NotFoundError
from chalicelib.services.identity import Identity
from chalicelib.store.jobs import Job
from chalicelib.store.dynamo import ItemKeys
from chalicelib.store.projects import Member, Project, ProjectRepository

ROLES = ("owner", "editor", "annotator", "viewer")


class Grant(Enum):
    NONE = "none"
    ANY = "any"
    ASSIGNED = "assigned"
    OWN = "own"


N, A, S, O = Grant.NONE, Grant.ANY, Grant.ASSIGNED, Grant.OWN

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
    "jobs.review":        (A, A, N, N),
    "annotations.read":   (A, A, S, A),
    "annotations.write":  (A, A, S, N),
    "versions.create":    (A, A, S, N),
    "filters.read":       (A, A, A, A),
    "filters.write":      (A, A, N, N),
    "activity.read":      (A, A, A, A),
    "exports.read":       (A, A, N, A),
    "exports.write":      (A, A, N, N),
    "leaks.read":         (A, A, N, A),
    "comments.read":      (A, A, A, A),
    "comments.write":     (A, A, A, N),
    "comments.moderate":  (A, A, N, N),
}


GLOBAL_ROLES = ("admin", "contributor", "viewer")

#                               admin contributor viewer
GLOBAL_RULES: dict[str, tuple[Grant, Grant, Grant]] = {
    "global.read":           (A, A, A),
    "images.register":       (A, A, N),
    "images.register_all":   (A, N, N),
    "images.reindex":        (A, N, N),
    "explore_index.rebuild": (A, N, N),
    "images.metadata":       (A, A, N),
    "images.masks":          (A, A, N),
    "images.caption":        (A, A, N),
    "images.tag":            (A, A, N),
    "share.upload":          (A, A, N),
    "tags.create":           (A, A, N),
    "tags.update":           (A, O, N),
    "tags.delete":           (A, O, N),
    "tags.force_delete":     (A, N, N),
    "projects.create":       (A, A, N),
    "datasets.create":       (A, A, N),
    "datasets.read":         (A, O, O),
    "datasets.manage":       (A, O, N),
    "datasets.audit_all":    (A, N, N),
    "datasets.force_delete": (A, N, N),
    "operations.read":       (A, O, O),
}


def grant(role: str, action: str) -> Grant:
    return RULES[action][ROLES.index(role)]


def global_grant(role: str, action: str) -> Grant:
    return GLOBAL_RULES[action][GLOBAL_ROLES.index(role)]


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
    def __init__(self, projects: ProjectRepository, viewer_group: str = "viewer",
                 contributor_group: str | None = None) -> None:
        self._projects = projects
        self._viewer_group = viewer_group
        self._contributor_group = contributor_group

    # Global resources ----------------------------------------------------------------------------

    def global_role(self, actor: Identity) -> str:
        if actor.is_admin:
            return "admin"
        if self._viewer_group in actor.groups:
            return "viewer"
        if self._contributor_group and self._contributor_group not in actor.groups:
            return "viewer"
        return "contributor"

    def may_global(self, actor: Identity, action: str, owner: str | None = None) -> bool:
        """Whether `actor` may do `action` on a global resource created by `owner` (if it has one)."""
        allowed = global_grant(self.global_role(actor), action)
        if allowed is Grant.OWN:
            return owner is not None and owner == actor.sub
        return allowed is Grant.ANY

    def require_global(self, actor: Identity, action: str, owner: str | None = None, what: str | None = None) -> None:
        """Admit `actor` to a global `action` (on a resource created by `owner`), or raise 403.
        `what` names the action in the message when the action's name would not say enough."""
        if self.may_global(actor, action, owner):
            return
        role = self.global_role(actor)
        what = what or action.replace(".", " ").replace("_", " ")
        scope = " on what others created" if global_grant(role, action) is Grant.OWN else ""
        raise ForbiddenError(f"Your role '{role}' does not allow {what}{scope}",
                             [{"role": role, "action": action}])

    # Projects ------------------------------------------------------------------------------------

    def require(self, actor: Identity, project_id: str, action: str, job: Job | None = None) -> Caller:
        """Admit `actor` to `action` in the project (and on `job`), or raise 404 / 403."""
        project, member = self._projects.standing(project_id, None if actor.is_admin else actor.sub)
        return self._allowed(actor, project_id, action, job, project, member)

    def require_reading(self, actor: Identity, project_id: str, action: str,
                        also: ItemKeys) -> tuple[Caller, list[dict]]:
        """`require`, with the items `also` names read in the same request (a page already chosen):
        they are returned only once the check has passed."""
        project, member, found = self._projects.standing_with(project_id, None if actor.is_admin else actor.sub,
                                                              also)
        return self._allowed(actor, project_id, action, None, project, member), found

    def admit(self, actor: Identity, project_id: str) -> Caller:
        """The caller's standing in the project; 404 for non-members, as if it did not exist."""
        project, member = self._projects.standing(project_id, None if actor.is_admin else actor.sub)
        return self._admitted(actor, project_id, project, member)

    def _allowed(self, actor: Identity, project_id: str, action: str, job: Job | None, project: Project | None,
                 member: Member | None) -> Caller:
        caller = self._admitted(actor, project_id, project, member)
        if not caller.may(action, job):
            what = action.replace(".", " ").replace("_", " ")
            scope = " on jobs not assigned to you" if grant(caller.role, action) is Grant.ASSIGNED else ""
            raise ForbiddenError(f"Your role '{caller.role}' does not allow {what}{scope}")
        return caller

    @staticmethod
    def _admitted(actor: Identity, project_id: str, project: Project | None, member: Member | None) -> Caller:
        if project is None or (member is None and not actor.is_admin):
            raise NotFoundError(f"Project '{project_id}' not found")
        return Caller(identity=actor, project=project, role="owner" if actor.is_admin else member.role)
