"""Projects, their label sets and members, and each project's activity timeline."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, Sequence

from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services import cursors
from chalicelib.services.access import ROLES, Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.services.images import patched_metadata
from chalicelib.store.activity import ActivityEntry
from chalicelib.clock import utcnow
from chalicelib.ids import new_id
from chalicelib.services.invitations import InvitationService, normalize_email
from chalicelib.store.projects import Invitation, Member, Project, ProjectRepository, invitee_key
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
                 activity: ActivityService, invitations: InvitationService,
                 purgers: Sequence[ProjectPurger] = ()) -> None:
        self._access = access
        self._projects = projects
        self._users = users
        self._activity = activity
        self._invitations = invitations
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
        """Change name, description, labels; `metadata` in `changes` is an RFC 7396 merge patch into
        the project's custom metadata, applied on the revision read and retried if another change
        came between (the other fields go in the same conditional write)."""
        caller = self._access.require(actor, project_id, "project.update")
        if "labels" in changes:
            _check_labels(changes["labels"])
        if not changes:
            return ProjectView(caller.project, caller.role)
        if "metadata" in changes:
            project = self._merge_metadata(caller.project, changes)
        else:
            project = self._projects.update(project_id, changes)
        self._activity.record(actor, "project", project_id, "updated", project_id=project_id,
                              summary=f"Changed {', '.join(sorted(changes))}", details={"fields": sorted(changes)})
        return ProjectView(project, caller.role)

    def _merge_metadata(self, project: Project, changes: dict[str, Any]) -> Project:
        first = [project]  # the project the access check read; later attempts read it again

        def read() -> Project:
            return first.pop() if first else self._projects.get(project.id)

        return patched_metadata(read, lambda found: found.metadata,
                                lambda found, merged: self._projects.update(
                                    found.id, {**changes, "metadata": merged}, expected_rev=found.rev),
                                changes["metadata"])

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

    # Members ------------------------------------------------------------------------------------

    def members(self, actor: Identity, project_id: str) -> list[Member]:
        """Members and pending invitations (`status: invited`), by role, members before invitations."""
        self._access.require(actor, project_id, "members.read")
        entries = self._projects.members(project_id) + [
            invitation.as_member() for invitation in self._projects.invitations(project_id)]
        return sorted(entries, key=lambda m: (ROLES.index(m.role), m.status != "active", m.user_id or m.email or ""))

    def add_member(self, actor: Identity, project_id: str, role: str, *, user_id: str | None = None,
                   email: str | None = None) -> tuple[Member, bool]:
        """Add a user named by id or by e-mail (exactly one) with `role`; returns the entry and
        whether it is new. A user the API knows becomes a member at once (a member named by id
        gets the new role); anyone else is invited, and joins on their first call. Inviting someone
        already invited, or an e-mail of a member, is a conflict."""
        self._access.require(actor, project_id, "members.manage")
        if email is not None:
            email = normalize_email(email)
            known = self._users.subs_with_email(email)
            if len(known) > 1:
                raise ConflictError(f"Several users signed in with '{email}': add one of them by user_id",
                                    [{"field": "email", "message": "ambiguous e-mail"}])
            if known:
                if self._projects.member(project_id, known[0]) is not None:
                    raise ConflictError(f"'{email}' is already a member of this project ({known[0]})")
                return self._set_role(actor, project_id, known[0], role)
        elif self._users.exists(user_id):
            return self._set_role(actor, project_id, user_id, role)
        return self._invite(actor, project_id, role, user_id, email), True

    def change_role(self, actor: Identity, project_id: str, who: str, role: str) -> Member:
        """Change the role of a member or of a pending invitation (`who`: user id, or an invited e-mail)."""
        self._access.require(actor, project_id, "members.manage")
        if self._projects.member(project_id, who) is not None:
            return self._set_role(actor, project_id, who, role)[0]
        invitation = self._invitation(project_id, who)
        if invitation.role != role:
            changed = replace(invitation, role=role)
            self._projects.put_invitation(changed, expected_role=invitation.role)
            self._activity.record(actor, "member", who, "invitation_changed", project_id=project_id,
                                  summary=f"Changed {who}'s invited role: {invitation.role} → {role}",
                                  details={"role": role, "previous_role": invitation.role})
            invitation = changed
        return invitation.as_member()

    def _set_role(self, actor: Identity, project_id: str, user_id: str, role: str) -> tuple[Member, bool]:
        current = self._projects.member(project_id, user_id)
        if current is not None and current.role == role:
            return current, False
        if current is not None and current.role == "owner":
            self._keep_an_owner(project_id, user_id)
        member = (replace(current, role=role) if current is not None else
                  Member(project_id=project_id, user_id=user_id, role=role, added_by=actor.sub, added_at=utcnow()))
        # Conditional on the role read: a member removed meanwhile is a 409, never re-added.
        self._projects.put_member(member, expected_role=current.role if current else None)
        action = "member_added" if current is None else "member_role_changed"
        summary = (f"Added {user_id} as {role}" if current is None
                   else f"Changed {user_id}'s role: {current.role} → {role}")
        self._activity.record(actor, "member", user_id, action, project_id=project_id, summary=summary,
                              details={"role": role, "previous_role": current.role if current else None})
        return member, current is None

    def _invite(self, actor: Identity, project_id: str, role: str, user_id: str | None,
                email: str | None) -> Member:
        invitation = Invitation(project_id=project_id, user_id=user_id, email=email, role=role,
                                invited_by=actor.sub, invited_at=utcnow())
        self._projects.put_invitation(invitation, expected_role=None)
        who = user_id or email
        self._activity.record(actor, "member", who, "member_invited", project_id=project_id,
                              summary=f"Invited {who} as {role}", details={"role": role})
        # The user may have made their first call between our look-up and the write: then no
        # later first sight would find the invitation, so it is accepted here.
        arrived = ([user_id] if self._users.exists(user_id) else []) if user_id else self._users.subs_with_email(email)
        if len(arrived) == 1:
            member = self._invitations.accept_for(invitation, arrived[0])
            if member is not None:
                return member
        return invitation.as_member()

    def _invitation(self, project_id: str, who: str) -> Invitation:
        for key in (invitee_key(who, None), invitee_key(None, normalize_email(who))):
            invitation = self._projects.invitation(project_id, key)
            if invitation is not None:
                return invitation
        raise NotFoundError(f"'{who}' is not a member of this project and has no invitation to it")

    def remove_member(self, actor: Identity, project_id: str, who: str) -> Member:
        """Remove a member (owners; anyone may leave), or revoke an invitation (owners)."""
        caller = self._access.admit(actor, project_id)
        if who != actor.sub:  # anyone may leave; only owners remove others
            self._access.require(actor, project_id, "members.manage")
        current = self._projects.member(project_id, who)
        if current is None:
            invitation = self._invitation(project_id, who)
            self._projects.remove_invitation(project_id, invitation.invitee, invitation.role)
            self._activity.record(caller.identity, "member", who, "invitation_revoked", project_id=project_id,
                                  summary=f"Revoked the invitation of {who} ({invitation.role})",
                                  details={"role": invitation.role})
            return invitation.as_member()
        if current.role == "owner":
            self._keep_an_owner(project_id, who)
        self._projects.remove_member(project_id, who, current.role)
        self._activity.record(caller.identity, "member", who, "member_removed", project_id=project_id,
                              summary=f"Removed {who} ({current.role})", details={"role": current.role})
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

