"""Projects, their members and their activity timeline."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.projects import (
    ActivityOut,
    ActivityQuery,
    CursorMeta,
    MemberBody,
    MemberOut,
    MemberRoleBody,
    ProjectCreate,
    ProjectOut,
    ProjectPatch,
)
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/projects"


def _project(view) -> ProjectOut:
    project = view.project
    return ProjectOut(id=project.id, name=project.name, description=project.description, labels=project.labels,
                      role=view.role, metadata=project.metadata, created_by=project.created_by, created_at=project.created_at,
                      updated_at=project.updated_at)


@endpoint(bp, BASE, "POST", body=ProjectCreate, response=ProjectOut, status=201)
def create_project(identity, body: ProjectCreate):
    """Create a project with its label set; the caller becomes its owner."""
    view = services().projects.create(identity, body.name, body.description,
                                       [label.model_dump() for label in body.labels])
    return ok(_project(view), f"Project '{view.project.name}' created", 201)


@endpoint(bp, BASE, response=list[ProjectOut])
def list_projects(identity):
    """The projects the caller is a member of (administrators: all), newest first."""
    views = services().projects.list(identity)
    return ok([_project(view) for view in views], f"Found {len(views)} project(s)")


@endpoint(bp, f"{BASE}/{{project_id}}", response=ProjectOut)
def get_project(project_id, identity):
    """One project with its label set and the caller's role."""
    return ok(_project(services().projects.get(identity, project_id)), "Project found")


@endpoint(bp, f"{BASE}/{{project_id}}", "PATCH", body=ProjectPatch, response=ProjectOut)
def update_project(project_id, identity, body: ProjectPatch):
    """Change name, description, the label set or custom metadata (an RFC 7396 merge patch; owners and editors)."""
    # Only the fields sent, but each label complete (exclude_unset would drop its defaults too).
    changes = body.model_dump(include=body.model_fields_set)
    if changes.get("name") is None:
        changes.pop("name", None)
    for name in ("labels", "metadata"):
        if name in changes and changes[name] is None:
            changes.pop(name)
    return ok(_project(services().projects.update(identity, project_id, changes)), "Project updated")


@endpoint(bp, f"{BASE}/{{project_id}}", "DELETE", response=ProjectOut)
def delete_project(project_id, identity):
    """Delete a project with its tasks, jobs, annotations, pool and filters (owners); images stay."""
    view = services().projects.delete(identity, project_id)
    return ok(_project(view), f"Project '{view.project.name}' deleted")


@endpoint(bp, f"{BASE}/{{project_id}}/members", response=list[MemberOut])
def list_members(project_id, identity):
    """The project's members and their roles."""
    members = services().projects.members(identity, project_id)
    return ok([MemberOut.model_validate(member) for member in members], f"Found {len(members)} member(s)")


@endpoint(bp, f"{BASE}/{{project_id}}/members", "POST", body=MemberBody, response=MemberOut, status=201,
          also={200: MemberOut})
def add_member(project_id, identity, body: MemberBody):
    """Add a user by id or e-mail, or invite one the API has not seen yet; change a member's role (owners)."""
    member, created = services().projects.add_member(identity, project_id, body.role, user_id=body.user_id,
                                                     email=body.email)
    status = 201 if created else 200
    who = body.user_id or member.email
    message = f"{who} is invited as {member.role}" if member.status == "invited" else f"{who} is {member.role}"
    return ok(MemberOut.model_validate(member), message, status)


@endpoint(bp, f"{BASE}/{{project_id}}/members/{{user_id}}", "PATCH", body=MemberRoleBody, response=MemberOut)
def change_member(project_id, user_id, identity, body: MemberRoleBody):
    """Change the role of a member or an invitation (`user_id`: the user, or an invited e-mail; owners);
    the last owner cannot step down."""
    member = services().projects.change_role(identity, project_id, user_id, body.role)
    return ok(MemberOut.model_validate(member), f"{user_id} is {member.role}")


@endpoint(bp, f"{BASE}/{{project_id}}/members/{{user_id}}", "DELETE", response=MemberOut)
def remove_member(project_id, user_id, identity):
    """Remove a member or revoke an invitation (owners), or leave the project yourself."""
    member = services().projects.remove_member(identity, project_id, user_id)
    return ok(MemberOut.model_validate(member), f"{user_id} removed")


@endpoint(bp, f"{BASE}/{{project_id}}/activity", query=ActivityQuery, response=list[ActivityOut])
def list_activity(project_id, identity, query: ActivityQuery):
    """The project's timeline, newest first; follow meta.next_cursor for older entries."""
    entries, cursor = services().projects.activity(identity, project_id, query.page_size, query.cursor)
    return ok([ActivityOut.model_validate(entry) for entry in entries], f"Found {len(entries)} entries",
              meta=CursorMeta(page_size=query.page_size, next_cursor=cursor))
