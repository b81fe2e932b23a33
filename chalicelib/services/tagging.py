"""Tagging images in the registry: one image or many at once, idempotent, with exact usage counts."""
from __future__ import annotations

from dataclasses import dataclass

from chalicelib.errors import NotFoundError
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.store.image_tags import ImageTagRepository
from chalicelib.store.images import ImageRepository
from chalicelib.store.tags import TagRepository


@dataclass(frozen=True)
class TaggingResult:
    changed: int  # links added or removed
    images_affected: int


class TaggingService:
    def __init__(self, images: ImageRepository, tags: TagRepository, links: ImageTagRepository,
                 activity: ActivityService, access: Access) -> None:
        self._access = access
        self._images = images
        self._tags = tags
        self._links = links
        self._activity = activity

    def tag(self, actor: Identity, image_ids: list[str], tag_ids: list[str]) -> TaggingResult:
        """Give every image every tag; links that exist already are left alone."""
        return self._change(actor, image_ids, tag_ids, adding=True)

    def untag(self, actor: Identity, image_ids: list[str], tag_ids: list[str]) -> TaggingResult:
        """Take every tag from every image; links that do not exist are ignored."""
        return self._change(actor, image_ids, tag_ids, adding=False)

    def _change(self, actor: Identity, image_ids: list[str], tag_ids: list[str], adding: bool) -> TaggingResult:
        self._access.require_global(actor, "images.tag", what="tagging images")
        image_ids, tag_ids = self._known(image_ids, tag_ids)
        affected: set[str] = set()
        changed = 0
        for tag_id in tag_ids:
            touched = self._links.link(tag_id, image_ids, actor.sub) if adding else self._links.unlink(tag_id, image_ids)
            changed += len(touched)
            affected |= touched
        if changed:
            self._activity.record(actor, "shared_image", image_ids[0] if len(image_ids) == 1 else "bulk",
                                  "tagged" if adding else "untagged",
                                  details={"tag_ids": tag_ids, "images": len(image_ids),
                                           "links_added" if adding else "links_removed": changed})
        return TaggingResult(changed, len(affected))

    def _known(self, image_ids: list[str], tag_ids: list[str]) -> tuple[list[str], list[str]]:
        """Both lists without repeats; 404 naming every id that does not exist."""
        image_ids, tag_ids = list(dict.fromkeys(image_ids)), list(dict.fromkeys(tag_ids))
        found_images = self._images.find(image_ids)
        known_tags = self._tags.find(tag_ids)
        missing_images = [i for i in image_ids if i not in found_images]
        missing_tags = [t for t in tag_ids if t not in known_tags]
        if missing_images or missing_tags:
            parts = []
            if missing_images:
                parts.append(f"shared image(s) not found: {', '.join(missing_images)}")
            if missing_tags:
                parts.append(f"tag(s) not found: {', '.join(missing_tags)}")
            message = "; ".join(parts)
            # str.capitalize() would lower-case the ids too; the message must name them as sent.
            raise NotFoundError(message[:1].upper() + message[1:], [
                *({"field": "shared_image_ids", "id": i, "message": "not found"} for i in missing_images),
                *({"field": "tag_ids", "id": t, "message": "not found"} for t in missing_tags),
            ])
        return image_ids, tag_ids
