"""Invitations: project members named by user id or e-mail before the API has seen them.

An invitation grants nothing. It becomes a membership with its role the first time its user is
seen: on their first call through any Lambda instance, by their `sub` or by the e-mail their token
says is verified. The inviting call accepts it at once if that user signed in meanwhile, so an
invitation written just as its user arrives is not left waiting.
"""
from __future__ import annotations

from chalicelib.clock import utcnow
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.store.projects import Invitation, Member, ProjectRepository, invitee_key


def normalize_email(email: str) -> str:
    """The form e-mails are stored and matched in: trimmed and case-folded (as peers match logins)."""
    return email.strip().casefold()


def invitees(identity: Identity) -> list[str]:
    """The invitation keys a caller answers to: their sub, and their e-mail if it is verified."""
    keys = [invitee_key(identity.sub, None)]
    if identity.email and identity.email_verified:
        keys.append(invitee_key(None, normalize_email(identity.email)))
    return keys


class InvitationService:
    def __init__(self, projects: ProjectRepository, activity: ActivityService) -> None:
        self._projects = projects
        self._activity = activity

    def accept(self, identity: Identity) -> list[Member]:
        """Turn every invitation waiting for this caller into a membership; the memberships made."""
        joined = []
        for invitation in self._projects.invitations_for(invitees(identity)):
            member = Member(project_id=invitation.project_id, user_id=identity.sub, role=invitation.role,
                            added_by=invitation.invited_by, added_at=utcnow())
            if not self._projects.accept_invitation(invitation, member):
                continue
            joined.append(member)
            self._activity.record(identity, "member", identity.sub, "invitation_accepted",
                                  project_id=invitation.project_id,
                                  summary=f"{identity.sub} joined as {invitation.role} "
                                          f"(invited as {invitation.user_id or invitation.email})",
                                  details={"role": invitation.role, "invited_by": invitation.invited_by})
        return joined

    def accept_for(self, invitation: Invitation, sub: str) -> Member | None:
        """Accept one invitation for a user known by `sub` (the inviter's call found them)."""
        member = Member(project_id=invitation.project_id, user_id=sub, role=invitation.role,
                        added_by=invitation.invited_by, added_at=utcnow())
        return member if self._projects.accept_invitation(invitation, member) else None
