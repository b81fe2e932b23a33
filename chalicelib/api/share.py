"""The share bucket as a file browser, selection resolving and presigned uploads."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.share import BrowseOut, BrowseQuery, ResolveBody, ResolveOut, UploadOut, UploadUrlsBody
from chalicelib.services.container import services

bp = Blueprint(__name__)
RESOLVE_LIMIT = 10_000


@endpoint(bp, "/api/v1/share/browse", query=BrowseQuery, response=BrowseOut)
def browse_share(identity, query: BrowseQuery):
    """List one folder of the share: sub-folders and image files, a page at a time."""
    level = services().share.browse(query.path, query.cursor, query.page_size)
    return ok(BrowseOut.model_validate(level), f"Found {len(level.entries)} entr{'y' if len(level.entries) == 1 else 'ies'}")


@endpoint(bp, "/api/v1/share/resolve", "POST", body=ResolveBody, response=ResolveOut)
def resolve_share(identity, body: ResolveBody):
    """Expand a selection of files and folders to the image files it holds."""
    selection = services().share.expand(body.paths, body.recursive, max_keys=RESOLVE_LIMIT)
    files = selection.keys[:RESOLVE_LIMIT]
    truncated = not selection.complete or len(selection.keys) > RESOLVE_LIMIT
    return ok(ResolveOut(files=files, total=len(files), truncated=truncated), f"Resolved {len(files)} image file(s)")


@endpoint(bp, "/api/v1/share/upload-urls", "POST", body=UploadUrlsBody, response=list[UploadOut])
def create_upload_urls(identity, body: UploadUrlsBody):
    """Presigned POST uploads straight to the share; each file is ingested when it lands."""
    uploads = services().share.upload_urls(identity, [file.model_dump() for file in body.files], body.folder)
    return ok([UploadOut.model_validate(upload) for upload in uploads], f"{len(uploads)} upload URL(s) valid "
              f"until {uploads[0].expires_at.isoformat()}")
