"""Split leaks of a project: copies of one picture in different splits."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.base import PageMeta
from chalicelib.schemas.split_leaks import LeakOut, SplitLeaksOut, SplitLeaksQuery
from chalicelib.services.container import services

bp = Blueprint(__name__)


@endpoint(bp, "/api/v1/projects/{project_id}/split-leaks", query=SplitLeaksQuery, response=SplitLeaksOut,
          paginated=True)
def list_split_leaks(project_id, identity, query: SplitLeaksQuery):
    """Pairs of copies (same image, same SHA-256, pHash within max_distance) that sit in different splits."""
    found = services().split_leaks.page(identity, project_id, query.max_distance, query.page, query.page_size)
    data = SplitLeaksOut(max_distance=query.max_distance, counts=found.counts,
                         leaks=[LeakOut.model_validate(leak) for leak in found.leaks])
    return ok(data, f"Found {found.total} split leak(s)",
              meta=PageMeta(total=found.total, page=query.page, page_size=query.page_size))
