"""The registry's read side and user-owned fields: list, get, URLs, near and exact duplicates,
custom metadata, masks."""
from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from chalicelib.clock import utcnow
from chalicelib.config import Settings
from chalicelib.services.identity import Identity
from chalicelib.errors import ConflictError, NotFoundError, ValidationError
from chalicelib.services import paths
from chalicelib.services.trash import hides
from chalicelib.store.dynamo import ItemKeys
from chalicelib.store.images import MISSING, READY, Image, ImageRepository
from chalicelib.store.objects import Bucket
from chalicelib.store.tags import Tag, TagRepository

if TYPE_CHECKING:
    from chalicelib.services.access import Access
    from chalicelib.services.registry_index import IndexedRegistry
    from chalicelib.services.trash import Trash

T = TypeVar("T")
R = TypeVar("R")
MAX_METADATA_BYTES = 16 * 1024
METADATA_ATTEMPTS = 3
# What `imaging.inspect` reports for the formats it accepts (a unit test keeps the two equal);
# never SVG or anything else a browser would run.
VERIFIED_MIME_TYPES = frozenset({"image/jpeg", "image/png", "image/webp", "image/gif", "image/bmp", "image/tiff"})
THUMBNAIL_MIME_TYPE = "image/jpeg"


@dataclass(frozen=True)
class ImageView:
    """An image as the API shows it: its record, its tags and a short-lived thumbnail URL."""

    image: Image
    tags: list[Tag]
    thumbnail_url: str | None


@dataclass(frozen=True)
class Similar:
    view: ImageView
    distance: int


@dataclass(frozen=True)
class DuplicateGroup:
    sha256: str
    views: list[ImageView]


def original_url(share: Bucket, image: Image, expires_in: int) -> str:
    """The presigned GET of an image's original: shown inline with its verified type when it is a
    ready image, otherwise a download of unknown type (its stored Content-Type is the uploader's word)."""
    verified = image.status == READY and image.mime_type in VERIFIED_MIME_TYPES
    return share.presign_get(image.file_path, expires_in, filename=image.filename,
                             disposition="inline" if verified else "attachment",
                             content_type=image.mime_type if verified else None)


class _SignedUrls:
    """Thumbnail URLs signed once and handed out again while at least half their lifetime is left.

    Signing costs ~1 ms of botocore per URL, which was half of an Explore page of 50. Thumbnails
    are content-addressed (a new image is a new key), so an URL signed a moment ago is as good as a
    new one; giving out the same URL also lets browsers cache the thumbnail. Bounded (LRU)."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._urls: OrderedDict[tuple[str, str, int], tuple[str, float]] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, cache: Bucket, key: str, expires_in: int) -> str:
        slot = (cache.name, key, expires_in)
        now = time.monotonic()
        with self._lock:
            found = self._urls.get(slot)
            if found is not None and now - found[1] < expires_in / 2:
                self._urls.move_to_end(slot)
                return found[0]
        url = cache.presign_get(key, expires_in, disposition="inline", content_type=THUMBNAIL_MIME_TYPE)
        with self._lock:
            self._urls[slot] = (url, now)
            self._urls.move_to_end(slot)
            while len(self._urls) > self._capacity:
                self._urls.popitem(last=False)
        return url


_thumbnail_urls = _SignedUrls()


def thumbnail_url(cache: Bucket, image: Image, expires_in: int) -> str | None:
    """The presigned GET of an image's thumbnail (a JPEG the registry itself wrote), valid for at
    least half of `expires_in`."""
    if not image.thumbnail_key:
        return None
    return _thumbnail_urls.get(cache, image.thumbnail_key, expires_in)


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two perceptual hashes given as hex strings of equal length."""
    if len(a) != len(b):
        raise ValueError(f"hashes differ in length: {len(a)} and {len(b)} hex digits")
    return (int(a, 16) ^ int(b, 16)).bit_count()


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge key by key, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def patched_metadata(read: Callable[[], T], current: Callable[[T], dict], write: Callable[[T, dict], R],
                     patch: dict[str, Any]) -> R:
    """Merge `patch` (RFC 7396) into what `read` gives and `write` it, conditional on what was read
    (`write` raises ConflictError when someone changed it meanwhile: read again, up to
    METADATA_ATTEMPTS times); 422 when the result is over MAX_METADATA_BYTES. Images and projects."""
    for attempt in range(METADATA_ATTEMPTS):
        found = read()
        merged = merge_patch(current(found), patch)
        size = len(json.dumps(merged).encode())
        if size > MAX_METADATA_BYTES:
            raise ValidationError(
                f"metadata would be {size} bytes; the limit is {MAX_METADATA_BYTES}",
                [{"field": "metadata", "location": "body", "message": "too large", "type": "too_long"}],
            )
        try:
            return write(found, merged)
        except ConflictError:
            if attempt == METADATA_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


class ImageService:
    def __init__(self, settings: Settings, images: ImageRepository, tags: TagRepository,
                 share: Bucket, cache: Bucket, access: "Access", registry: "IndexedRegistry",
                 trash: "Trash | None" = None) -> None:
        self._registry = registry
        self._trash = trash
        self._access = access
        self._settings = settings
        self._images = images
        self._tags = tags
        self._share = share
        self._cache = cache

    def list(self, *, page: int, page_size: int, search: str | None = None, tag_ids: list[str] | None = None,
             folder: str | None = None, status: str | None = None) -> tuple[list[ImageView], int]:
        """Images in path order matching every given filter (tags: ALL of them), one page and the total."""
        index = self._registry.index()
        clause, params = index.listing(search=search, tag_ids=tag_ids or [], status=status,
                                       prefix=paths.folder_prefix(folder, "folder") if folder else "",
                                       hidden=self._registry.hidden())
        ids = index.page(clause, params, (page - 1) * page_size, page_size)
        return self.views(ids, self._registry.tag_index()), index.count(clause, params)

    def get(self, image_id: str) -> ImageView:
        return self._view(self._visible(image_id), self._tag_index())

    def views(self, image_ids: list[str], tags: dict[str, Tag] | None = None) -> list[ImageView]:
        """Views of these images; `tags` (every tag by id) when the caller holds them already."""
        found = self._images.find(image_ids)
        return self.views_of([found[image_id] for image_id in image_ids if image_id in found], tags)

    def keys(self, image_ids: list[str]) -> ItemKeys:
        """These images' keys, for a read made together with another (an access check)."""
        return self._images.keys(image_ids)

    def views_of_read(self, items: list[dict], tags: dict[str, Tag] | None = None) -> list[ImageView]:
        """Views of raw image items read with `keys`."""
        return self.views_of(self._images.from_raw(items), tags)

    def views_of(self, images: list[Image], tags: dict[str, Tag] | None = None) -> list[ImageView]:
        """Views of images already read: tags and thumbnail URLs added, nothing read again."""
        tags = self._tag_index() if tags is None else tags
        return [self._view(image, tags) for image in images]

    def urls(self, image_id: str, expires_in: int | None) -> dict[str, Any]:
        """Presigned GETs of the original and its thumbnail (never logged)."""
        image = self._visible(image_id)
        if image.status == MISSING:
            raise ConflictError(f"Shared image '{image_id}' is missing from the share")
        ttl = expires_in or self._settings.presign_ttl_seconds
        return {
            "url": original_url(self._share, image, ttl),
            "thumbnail_url": thumbnail_url(self._cache, image, ttl),
            "expires_in": ttl,
        }

    def similar(self, image_id: str, max_distance: int, limit: int) -> list[Similar]:
        """Near-duplicates: ready images whose perceptual hash is within `max_distance` bits."""
        index = self._registry.index()
        found = index.hash_of(image_id)
        hidden = self._registry.hidden()
        if found is not None and hidden and self._images.get(image_id).file_path.startswith(hidden):
            found = None
        if found is None:
            raise NotFoundError(f"Shared image '{image_id}' not found")
        phash, status = found
        if not phash:
            raise ConflictError(f"Shared image '{image_id}' has no perceptual hash (status {status})")
        close = index.similar(phash, max_distance, limit, exclude=image_id)
        views = {view.image.id: view for view in self.views([found for _, found in close], self._registry.tag_index())}
        return [Similar(views[found], distance) for distance, found in close
                if found in views and not hides(hidden, views[found].image.file_path)]

    def duplicates(self, page: int, page_size: int) -> tuple[list[DuplicateGroup], int]:
        """Groups of ready images with the same content (SHA-256), largest first."""
        index = self._registry.index()
        chosen, total = index.duplicate_groups((page - 1) * page_size, page_size, self._registry.hidden())
        views = {view.image.id: view for view in self.views([image for _, group in chosen for image in group],
                                                            self._registry.tag_index())}
        return [DuplicateGroup(sha, [views[image] for image in group if image in views]) for sha, group in chosen], total

    def update_metadata(self, actor: Identity, image_id: str, patch: dict[str, Any]) -> ImageView:
        """Merge `patch` into the image's custom metadata (RFC 7396), retrying a concurrent change."""
        self._access.require_global(actor, "images.metadata", what="changing image metadata")
        return patched_metadata(
            lambda: self._visible(image_id), lambda image: image.metadata,
            lambda image, merged: self._view(self._images.update_metadata(image_id, merged, image.metadata_rev),
                                             self._tag_index()), patch)

    def set_caption(self, actor: Identity, image_id: str, text: str | None, tags: list[str] | None) -> ImageView:
        """Write the image's caption (free text, ordered tags, or both: tags alone make the text)."""
        self._access.require_global(actor, "images.caption", what="captioning images")
        self._visible(image_id)
        caption = {"text": text if text is not None else ", ".join(tags or ()), "tags": list(tags or ()),
                   "source": "user", "updated_by": actor.sub, "updated_at": utcnow().isoformat()}
        return self._view(self._images.set_caption(image_id, caption), self._tag_index())

    def clear_caption(self, actor: Identity, image_id: str) -> ImageView:
        self._access.require_global(actor, "images.caption", what="captioning images")
        self._visible(image_id)
        return self._view(self._images.set_caption(image_id, None), self._tag_index())

    def set_mask(self, actor: Identity, image_id: str, source_id: str | None, category: str | None) -> ImageView:
        """Make `image_id` a mask of `source_id` in `category`, or (source None) an ordinary image again."""
        self._access.require_global(actor, "images.masks", what="setting masks")
        if source_id is not None:
            if not category:
                raise ValidationError("mask_category is required with source_image_id",
                                      [{"field": "mask_category", "location": "body", "message": "required",
                                        "type": "missing"}])
            if source_id == image_id:
                raise ValidationError("An image cannot be a mask of itself",
                                      [{"field": "source_image_id", "location": "body", "message": "same as the mask",
                                        "type": "value_error"}])
            self._images.get(source_id)
        return self._view(self._images.set_mask(image_id, source_id, category), self._tag_index())

    def masks(self, image_id: str) -> list[ImageView]:
        self._visible(image_id)
        return self.views(self._images.masks_of(image_id))

    def _visible(self, image_id: str) -> Image:
        """The image, unless a deleted dataset hides it (404 then, as for one that never was)."""
        image = self._images.get(image_id)
        if self._trash is not None and self._trash.hidden_now([image.file_path]):
            raise NotFoundError(f"Shared image '{image_id}' not found")
        return image

    def _tag_index(self) -> dict[str, Tag]:
        return {tag.id: tag for tag in self._tags.list()}

    def _view(self, image: Image, tags: dict[str, Tag]) -> ImageView:
        return ImageView(image, sorted((tags[t] for t in image.tag_ids if t in tags), key=lambda t: t.name.casefold()),
                         thumbnail_url(self._cache, image, self._settings.presign_ttl_seconds))
