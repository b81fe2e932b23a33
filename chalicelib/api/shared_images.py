"""The image registry: register, list, inspect, URLs, duplicates, metadata, masks and tags."""
from __future__ import annotations

from datetime import timedelta

from chalice import Blueprint

from chalicelib.api.operations import operation_out
from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.base import PageMeta, PageQuery
from chalicelib.schemas.images import (
    BulkTagBody,
    BulkTagOut,
    BulkUntagOut,
    CaptionIn,
    DuplicateGroupOut,
    ImageListQuery,
    ImageOut,
    MaskBody,
    MetadataPatch,
    RegisterBody,
    RegisterOut,
    SimilarOut,
    SimilarQuery,
    TagIdsBody,
    TagRef,
    UrlOut,
    UrlQuery,
)
from chalicelib.schemas.operations import OperationOut
from chalicelib.clock import utcnow
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/shared-images"


def image_out(view, **extra) -> dict:
    image = view.image
    return dict(
        id=image.id, file_path=image.file_path, filename=image.filename, folder=image.folder, status=image.status,
        reason=image.reason, width=image.width, height=image.height, file_size_bytes=image.size,
        mime_type=image.mime_type, format=image.format, frames=image.frames, checksum_sha256=image.sha256,
        perceptual_hash=image.phash, exif=image.exif, etag=image.etag, metadata=image.metadata,
        mask_of=image.mask_of, mask_category=image.mask_category, registered_by=image.registered_by,
        thumbnail_url=view.thumbnail_url, tags=[TagRef.model_validate(tag) for tag in view.tags],
        caption=image.caption,
        created_at=image.created_at, updated_at=image.updated_at, **extra,
    )


@endpoint(bp, BASE, query=ImageListQuery, response=list[ImageOut], paginated=True)
def list_shared_images(identity, query: ImageListQuery):
    """List registered images in path order, filtered by filename, tags (all of them), folder and status."""
    views, total = services().images.list(page=query.page, page_size=query.page_size, search=query.search,
                                           tag_ids=query.tag_ids, folder=query.folder, status=query.status)
    meta = PageMeta(total=total, page=query.page, page_size=query.page_size)
    return ok([ImageOut(**image_out(view)) for view in views], f"Found {total} image(s)", meta=meta)


@endpoint(bp, f"{BASE}/register", "POST", body=RegisterBody, response=RegisterOut, also={202: OperationOut})
def register_shared_images(identity, body: RegisterBody):
    """Register share files and folders. Small selections answer now; large ones answer 202 with an operation.

    The whole share ('') and more than `register_user_limit` images in one request are for administrators (403).
    """
    registration = services().indexing.register(identity, body.file_paths)
    if registration.operation is not None:
        out: OperationOut = operation_out(registration.operation)
        return ok(out, f"Registration of a large selection started; poll /api/v1/operations/{out.id}", 202)
    result = registration.result
    images = services().images.views_of(result.registered)
    data = RegisterOut(
        registered=[ImageOut(**image_out(view)) for view in images],
        already_existed=result.already_existed,
        failed=result.failed,
        total_registered=len(images),
        total_already_existed=len(result.already_existed),
        total_failed=len(result.failed),
    )
    return ok(data, f"Registered {len(images)} new image(s)")


@endpoint(bp, f"{BASE}/duplicates", query=PageQuery, response=list[DuplicateGroupOut], paginated=True)
def list_duplicates(identity, query: PageQuery):
    """Groups of images with identical content (same SHA-256) across the registry, largest first."""
    groups, total = services().images.duplicates(query.page, query.page_size)
    data = [DuplicateGroupOut(checksum_sha256=group.sha256, count=len(group.views),
                              images=[ImageOut(**image_out(view)) for view in group.views]) for group in groups]
    return ok(data, f"Found {total} group(s) of duplicates",
              meta=PageMeta(total=total, page=query.page, page_size=query.page_size))


@endpoint(bp, f"{BASE}/bulk-tag", "POST", body=BulkTagBody, response=BulkTagOut)
def bulk_tag(identity, body: BulkTagBody):
    """Give every listed image every listed tag (idempotent)."""
    result = services().tagging.tag(identity, body.shared_image_ids, body.tag_ids)
    return ok(BulkTagOut(tags_added=result.changed, images_affected=result.images_affected), "Tags added successfully")


@endpoint(bp, f"{BASE}/bulk-untag", "POST", body=BulkTagBody, response=BulkUntagOut)
def bulk_untag(identity, body: BulkTagBody):
    """Remove every listed tag from every listed image (idempotent)."""
    result = services().tagging.untag(identity, body.shared_image_ids, body.tag_ids)
    return ok(BulkUntagOut(tags_removed=result.changed, images_affected=result.images_affected),
              "Tags removed successfully")


@endpoint(bp, f"{BASE}/{{image_id}}", response=ImageOut)
def get_shared_image(image_id, identity):
    """One image with its facts, tags and thumbnail URL."""
    return ok(ImageOut(**image_out(services().images.get(image_id))), "Image found")


@endpoint(bp, f"{BASE}/{{image_id}}", "PATCH", body=MetadataPatch, response=ImageOut)
def update_shared_image(image_id, identity, body: MetadataPatch):
    """Merge into the image's custom metadata (null deletes a key)."""
    view = services().images.update_metadata(identity, image_id, body.metadata)
    return ok(ImageOut(**image_out(view)), "Metadata updated")


@endpoint(bp, f"{BASE}/{{image_id}}/url", query=UrlQuery, response=UrlOut)
def get_shared_image_url(image_id, identity, query: UrlQuery):
    """Short-lived presigned GET URLs of the original and its thumbnail."""
    urls = services().images.urls(image_id, query.expires_in)
    expires_at = utcnow() + timedelta(seconds=urls["expires_in"])
    return ok(UrlOut(**urls, expires_at=expires_at), f"URL valid for {urls['expires_in']} s")


@endpoint(bp, f"{BASE}/{{image_id}}/similar", query=SimilarQuery, response=list[SimilarOut])
def list_similar(image_id, identity, query: SimilarQuery):
    """Near-duplicates: images whose perceptual hash differs in at most max_distance bits, closest first."""
    similar = services().images.similar(image_id, query.max_distance, query.limit)
    return ok([SimilarOut(**image_out(item.view, distance=item.distance)) for item in similar],
              f"Found {len(similar)} similar image(s)")


@endpoint(bp, f"{BASE}/{{image_id}}/masks", response=list[ImageOut])
def list_masks(image_id, identity):
    """The images registered as masks of this one."""
    masks = services().images.masks(image_id)
    return ok([ImageOut(**image_out(view)) for view in masks], f"Found {len(masks)} mask(s)")


@endpoint(bp, f"{BASE}/{{image_id}}/mask", "PUT", body=MaskBody, response=ImageOut)
def set_mask(image_id, identity, body: MaskBody):
    """Register this image as a mask of a source image (with its category), or clear that."""
    view = services().images.set_mask(identity, image_id, body.source_image_id, body.mask_category)
    return ok(ImageOut(**image_out(view)), "Mask link updated")


@endpoint(bp, f"{BASE}/{{image_id}}/caption", "PUT", body=CaptionIn, response=ImageOut)
def set_caption(image_id, identity, body: CaptionIn):
    """Write the image's caption for image-text training: free text, ordered tags, or both."""
    view = services().images.set_caption(identity, image_id, body.text, body.tags)
    return ok(ImageOut(**image_out(view)), "Caption saved")


@endpoint(bp, f"{BASE}/{{image_id}}/caption", "DELETE", response=ImageOut)
def delete_caption(image_id, identity):
    """Remove the image's caption (idempotent)."""
    view = services().images.clear_caption(identity, image_id)
    return ok(ImageOut(**image_out(view)), "Caption removed")


@endpoint(bp, f"{BASE}/{{image_id}}/tags", "POST", body=TagIdsBody, response=ImageOut)
def tag_shared_image(image_id, identity, body: TagIdsBody):
    """Add tags to one image (idempotent)."""
    result = services().tagging.tag(identity, [image_id], body.tag_ids)
    return ok(ImageOut(**image_out(services().images.get(image_id))), f"{result.changed} tag(s) added")


@endpoint(bp, f"{BASE}/{{image_id}}/tags/{{tag_id}}", "DELETE", response=ImageOut)
def untag_shared_image(image_id, tag_id, identity):
    """Remove one tag from one image (idempotent)."""
    result = services().tagging.untag(identity, [image_id], [tag_id])
    return ok(ImageOut(**image_out(services().images.get(image_id))), f"{result.changed} tag(s) removed")
