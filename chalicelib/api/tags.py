from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.base import PageMeta
from chalicelib.schemas.tags import TagCreate, TagDeleteQuery, TagListQuery, TagOut, TagUpdate
from chalicelib.services.container import services

bp = Blueprint(__name__)


def _out(tag, include_usage: bool = True) -> TagOut:
    out = TagOut.model_validate(tag)
    return out if include_usage else out.model_copy(update={"usage_count": None})


@endpoint(bp, "/api/v1/tags", "POST", body=TagCreate, response=TagOut, status=201)
def create_tag(identity, body: TagCreate):
    """Create a tag; names are unique ignoring case."""
    tag = services().tags.create(identity, body.name, body.color, body.description, body.category)
    return ok(_out(tag), f"Tag '{tag.name}' created", 201)


@endpoint(bp, "/api/v1/tags", query=TagListQuery, response=list[TagOut], paginated=True)
def list_tags(identity, query: TagListQuery):
    """List tags by name, optionally filtered by a name substring."""
    tags = services().tags.list(query.search)
    start = (query.page - 1) * query.page_size
    page = [_out(tag, query.include_usage_count) for tag in tags[start : start + query.page_size]]
    meta = PageMeta(total=len(tags), page=query.page, page_size=query.page_size)
    return ok(page, f"Found {len(tags)} tag(s)", meta=meta)


@endpoint(bp, "/api/v1/tags/{tag_id}", response=TagOut)
def get_tag(tag_id, identity):
    """Get one tag with its usage count."""
    return ok(_out(services().tags.get(tag_id)), "Tag found")


@endpoint(bp, "/api/v1/tags/{tag_id}", "PATCH", body=TagUpdate, response=TagOut)
def update_tag(tag_id, identity, body: TagUpdate):
    """Change a tag's name, color, category or description."""
    tag = services().tags.update(identity, tag_id, body.model_dump(exclude_unset=True))
    return ok(_out(tag), f"Tag '{tag.name}' updated")


@endpoint(bp, "/api/v1/tags/{tag_id}", "DELETE", query=TagDeleteQuery, response=TagOut)
def delete_tag(tag_id, identity, query: TagDeleteQuery):
    """Delete a tag; refused with 409 while images carry it, unless force=true."""
    tag = services().tags.delete(identity, tag_id, force=query.force)
    return ok(_out(tag), f"Tag '{tag.name}' deleted")
