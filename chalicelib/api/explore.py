"""Explore a project's pool with the one filter model, and keep named filters."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.api.shared_images import image_out
from chalicelib.schemas.explore import (
    ExploreImageOut,
    ExploreOut,
    ExploreQuery,
    PlacementOut,
    SavedFilterBody,
    SavedFilterOut,
    SavedFilterPut,
)
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/projects/{project_id}"


@endpoint(bp, f"{BASE}/explore", query=ExploreQuery, response=ExploreOut)
def explore(project_id, identity, query: ExploreQuery):
    """The pool filtered (tags any/all, exclusions, tasks, job, annotation, split, sizes, path), newest first."""
    image_filter = query.image_filter()
    page = services().explore.explore(identity, project_id, image_filter, page=query.page,
                                       page_size=query.page_size, cursor=query.cursor)
    images = [ExploreImageOut(**image_out(item.view), tasks=[PlacementOut.model_validate(p) for p in item.placements],
                              is_annotated=item.is_annotated,
                              annotation_status="annotated" if item.is_annotated else "unannotated")
              for item in page.items]
    data = ExploreOut(images=images, total=page.total, page=query.page, page_size=query.page_size,
                      next_cursor=page.next_cursor, filters_applied=image_filter.applied())
    return ok(data, f"Found {page.total} image(s)")


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
