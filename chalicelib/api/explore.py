"""Explore a project's pool with the one filter model."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.api.shared_images import image_out
from chalicelib.schemas.explore import ExploreImageOut, ExploreOut, ExploreQuery, PlacementOut
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
