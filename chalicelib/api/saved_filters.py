"""Saved filters: named Explore filters of a project, usable by tasks and exports."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.saved_filters import SavedFilterBody, SavedFilterOut, SavedFilterPut
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/projects/{project_id}"


@endpoint(bp, f"{BASE}/saved-filters", response=list[SavedFilterOut])
def list_saved_filters(project_id, identity):
    """The project's saved filters, newest first."""
    saved = services().saved_filters.list(identity, project_id)
    return ok([SavedFilterOut.model_validate(item) for item in saved], f"Found {len(saved)} saved filter(s)")


@endpoint(bp, f"{BASE}/saved-filters", "POST", body=SavedFilterBody, response=SavedFilterOut, status=201)
def create_saved_filter(project_id, identity, body: SavedFilterBody):
    """Save a filter under a name (invalid filter objects are refused with 422)."""
    saved = services().saved_filters.create(identity, project_id, body.name, body.filter)
    return ok(SavedFilterOut.model_validate(saved), f"Filter '{saved.name}' saved", 201)


@endpoint(bp, f"{BASE}/saved-filters/{{filter_id}}", response=SavedFilterOut)
def get_saved_filter(project_id, filter_id, identity):
    """One saved filter."""
    return ok(SavedFilterOut.model_validate(services().saved_filters.get(identity, project_id, filter_id)),
              "Saved filter found")


@endpoint(bp, f"{BASE}/saved-filters/{{filter_id}}", "PUT", body=SavedFilterPut, response=SavedFilterOut)
def update_saved_filter(project_id, filter_id, identity, body: SavedFilterPut):
    """Rename a saved filter and/or replace its filter object."""
    saved = services().saved_filters.update(identity, project_id, filter_id, body.name, body.filter)
    return ok(SavedFilterOut.model_validate(saved), f"Filter '{saved.name}' updated")


@endpoint(bp, f"{BASE}/saved-filters/{{filter_id}}", "DELETE", response=SavedFilterOut)
def delete_saved_filter(project_id, filter_id, identity):
    """Delete a saved filter."""
    saved = services().saved_filters.delete(identity, project_id, filter_id)
    return ok(SavedFilterOut.model_validate(saved), f"Filter '{saved.name}' deleted")
