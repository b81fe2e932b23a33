"""Projects and their members, in ProjectsTable, one partition per project (`pk = <project id>`).

- `sk = PROJECT`: the project (name, description, label set), also in the sparse `all_projects`
  index (`listing = PROJECT`, `created_at`) that lets an administrator list every project;
- `sk = MEMBER#<user>`: a membership with its role, in the sparse `by_member` index
  (`member_id`, `pk`) that lists a user's projects. Members stay here: every project route reads
  the caller's membership with the project (services/access.py);
- `sk = INVITE#<invitee>`: an invitation of someone the API has not seen yet, `<invitee>` being
  `sub#<user id>` or `email#<normalized e-mail>`. It is in `by_member` as `member_id =
  INVITE#<invitee>` (a value no user id takes), so the first call of that user finds every
  invitation waiting for them with one Query per sub and e-mail. It grants nothing: access reads
  `MEMBER#` items only, and accepting turns it into one in a transaction.
The same partition holds the project's tasks (store/tasks.py), saved filters
(store/saved_filters.py) and exports (store/exports.py), so a project page is one Query.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from pynamodb.attributes import JSONAttribute, NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import DoesNotExist
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.clock import utcnow
from chalicelib.errors import ConflictError, NotFoundError
from chalicelib.store.dynamo import (
    ItemKeys, Transaction, TransactionCancelled, batch_get_tables, conditional, entity, store_errors, table_meta,
)

PROJECT_SK = "PROJECT"
INVITE = "INVITE#"
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
    metadata = JSONAttribute(null=True)  # custom, free-form; absent on projects that never had any

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


class InvitationItem(Model):
    Meta = table_meta("projects_table")

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    member_id = UnicodeAttribute()  # INVITE#<invitee>: found by the invitee's first call
    invited_user_id = UnicodeAttribute(null=True)
    invited_email = UnicodeAttribute(null=True)
    role = UnicodeAttribute()
    invited_by = UnicodeAttribute(null=True)
    invited_at = UTCDateTimeAttribute()

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
    metadata: dict[str, Any] = field(default_factory=dict)
    rev: int = 0  # every update adds one: the condition of a metadata merge


@dataclass(frozen=True)
class Member:
    project_id: str
    user_id: str
    role: str
    added_by: str | None
    added_at: datetime
    email: str | None = None
    status: str = "active"  # or "invited": an invitation, no membership yet


@dataclass(frozen=True)
class Invitation:
    """Someone invited by user id or by e-mail (exactly one), who has not called the API since."""

    project_id: str
    user_id: str | None
    email: str | None
    role: str
    invited_by: str | None
    invited_at: datetime

    @property
    def invitee(self) -> str:
        return invitee_key(self.user_id, self.email)

    def as_member(self) -> Member:
        """The invitation as the member list shows it."""
        return Member(project_id=self.project_id, user_id=self.user_id, role=self.role, added_by=self.invited_by,
                      added_at=self.invited_at, email=self.email, status="invited")


def invitee_key(user_id: str | None, email: str | None) -> str:
    return f"sub#{user_id}" if user_id is not None else f"email#{email}"


def member_sk(user_id: str) -> str:
    return f"MEMBER#{user_id}"


def _to_project(item: ProjectItem) -> Project:
    return entity(Project, item, id=item.pk, created_at=datetime.fromisoformat(item.created_at))

def _to_member(item: MemberItem) -> Member:
    return entity(Member, item, project_id=item.pk, user_id=item.member_id, email=None, status="active")


def _to_invitation(item: InvitationItem) -> Invitation:
    return Invitation(project_id=item.pk, user_id=item.invited_user_id, email=item.invited_email, role=item.role,
                      invited_by=item.invited_by, invited_at=item.invited_at)


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

    def exists(self, project_id: str) -> bool:
        return self.standing(project_id, None)[0] is not None

    def standing(self, project_id: str, user_id: str | None) -> tuple[Project | None, Member | None]:
        """The project and the user's membership in it (None for what does not exist), in one
        consistent BatchGetItem: every project route's access check costs one request."""
        project, member, _ = self.standing_with(project_id, user_id, None)
        return project, member

    def standing_with(self, project_id: str, user_id: str | None,
                      also: ItemKeys | None) -> tuple[Project | None, Member | None, list[dict]]:
        """`standing`, and the items `also` names read in the same request:
        their raw items are returned for the caller to show only once the check has passed."""
        keys = [{"pk": project_id, "sk": PROJECT_SK}] + ([{"pk": project_id, "sk": member_sk(user_id)}]
                                                          if user_id is not None else [])
        requests: dict[type[Model], list[dict[str, str]]] = {ProjectItem: keys}
        if also is not None:
            requests[also.model] = also.keys
        found = batch_get_tables("reading a project", requests)
        project = member = None
        for raw in found[ProjectItem]:
            if raw["sk"]["S"] == PROJECT_SK:
                project = _to_project(ProjectItem.from_raw_data(raw))
            else:
                member = _to_member(MemberItem.from_raw_data(raw))
        return project, member, found[also.model] if also is not None else []

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

    def update(self, project_id: str, changes: dict[str, Any], expected_rev: int | None = None) -> Project:
        """Set the fields in `changes` (description None removes it) and add one to `rev`; with
        `expected_rev`, only if nobody changed the project since (409 otherwise)."""
        actions = [getattr(ProjectItem, name).set(value) if value is not None or name != "description"
                   else ProjectItem.description.remove() for name, value in changes.items()]
        actions += [ProjectItem.updated_at.set(utcnow()), ProjectItem.rev.add(1)]
        condition = ProjectItem.pk.exists()
        failed = NotFoundError(f"Project '{project_id}' not found")
        if expected_rev is not None:
            condition &= ProjectItem.rev == expected_rev
            failed = ConflictError(f"Project '{project_id}' changed meanwhile; retry")
        with conditional("updating a project", failed):
            ProjectItem(pk=project_id, sk=PROJECT_SK).update(actions=actions, condition=condition)
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

    # Invitations ---------------------------------------------------------------------------------

    @staticmethod
    def _invitation_item(invitation: Invitation) -> InvitationItem:
        key = INVITE + invitation.invitee
        return InvitationItem(pk=invitation.project_id, sk=key, member_id=key, invited_user_id=invitation.user_id,
                              invited_email=invitation.email, role=invitation.role, invited_by=invitation.invited_by,
                              invited_at=invitation.invited_at)

    def invitation(self, project_id: str, invitee: str) -> Invitation | None:
        try:
            with store_errors("reading an invitation"):
                return _to_invitation(InvitationItem.get(project_id, INVITE + invitee, consistent_read=True))
        except DoesNotExist:
            return None

    def invitations(self, project_id: str) -> list[Invitation]:
        with store_errors("listing invitations"):
            return [_to_invitation(item) for item in InvitationItem.query(
                project_id, InvitationItem.sk.startswith(INVITE), consistent_read=True)]

    def invitations_for(self, invitees: Iterable[str]) -> list[Invitation]:
        """Every project's invitation waiting for any of `invitees` (`by_member`, one Query each)."""
        with store_errors("finding invitations"):
            return [_to_invitation(item) for invitee in dict.fromkeys(invitees)
                    for item in InvitationItem.by_member.query(INVITE + invitee)]

    def put_invitation(self, invitation: Invitation, *, expected_role: str | None) -> None:
        """Invite (`expected_role` None: only if not invited yet) or change the invited role (only if it
        is still `expected_role`)."""
        item = self._invitation_item(invitation)
        who = invitation.user_id or invitation.email
        if expected_role is None:
            condition = InvitationItem.sk.does_not_exist()
            failed = ConflictError(f"'{who}' is already invited to this project; change the role with PATCH")
        else:
            condition = InvitationItem.role == expected_role
            failed = ConflictError(f"The invitation of '{who}' changed meanwhile; reload and retry")
        with conditional("saving an invitation", failed):
            item.save(condition=condition)

    def remove_invitation(self, project_id: str, invitee: str, expected_role: str) -> None:
        changed = ConflictError("The invitation changed meanwhile; reload and retry")
        with conditional("revoking an invitation", changed):
            InvitationItem(pk=project_id, sk=INVITE + invitee).delete(condition=InvitationItem.role == expected_role)

    def accept_invitation(self, invitation: Invitation, member: Member) -> bool:
        """Turn the invitation into `member`, both or neither; False when it was gone already or the
        user was a member already (then the invitation is dropped and the membership kept)."""
        invite = InvitationItem(pk=invitation.project_id, sk=INVITE + invitation.invitee)
        try:
            with Transaction("accepting an invitation") as tx:
                tx.delete(invite, condition=InvitationItem.sk.exists(), name="invitation")
                tx.put(self._member_item(member), condition=MemberItem.sk.does_not_exist(), name="member")
        except TransactionCancelled as exc:
            if exc.failed("member") and not exc.failed("invitation"):
                with conditional("dropping an invitation"):
                    invite.delete(condition=InvitationItem.sk.exists())
            elif not exc.failed("invitation"):
                raise
            return False
        return True
