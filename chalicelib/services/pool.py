"""A project's image pool: registry images the project may put into tasks."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from chalicelib.errors import ConflictError, ValidationError
from chalicelib.services.access import Access
from chalicelib.services.activity import ActivityService
from chalicelib.services.identity import Identity
from chalicelib.store.images import READY, Image, ImageRepository
from chalicelib.store.jobs import JobRepository
from chalicelib.store.pool import PoolRepository

if TYPE_CHECKING:
    from chalicelib.services.trash import Trash


@dataclass(frozen=True)
class PoolChange:
    added: list[str]
    already_in_pool: list[str]
    unknown: list[str]
    not_ready: list[str]


class PoolService:
    def __init__(self, access: Access, pool: PoolRepository, images: ImageRepository, jobs: JobRepository,
                 activity: ActivityService, trash: "Trash | None" = None) -> None:
        self._trash = trash
        self._access = access
        self._pool = pool
        self._images = images
        self._jobs = jobs
        self._activity = activity

    def add(self, actor: Identity, project_id: str, image_ids: list[str]) -> PoolChange:
        """Add registry images to the pool (idempotent): reports added, already there, unknown ids and
        images that are not `ready` (not an image, an unsafe key, or deleted: they are not added)."""
        self._access.require(actor, project_id, "pool.write")
        image_ids = list(dict.fromkeys(image_ids))
        found = self._images.find(image_ids)
        hidden = self._trash.hidden_now(image.file_path for image in found.values()) if self._trash else set()
        found = {image_id: image for image_id, image in found.items() if image.file_path not in hidden}
        unknown = [image for image in image_ids if image not in found]  # or in a deleted dataset
        not_ready = [image for image in image_ids if image in found and found[image].status != READY]
        usable = [found[image] for image in image_ids if image in found and found[image].status == READY]
        added = self.ensure(project_id, usable, actor.sub)
        already = [image.id for image in usable if image.id not in set(added)]
        if added:
            self._activity.record(actor, "pool", project_id, "images_added", project_id=project_id,
                                  summary=f"Added {len(added)} image(s) to the pool",
                                  details={"added": len(added), "image_ids": added[:20]})
        return PoolChange(added=added, already_in_pool=already, unknown=unknown, not_ready=not_ready)

    def ensure(self, project_id: str, images: list[Image], actor_sub: str | None) -> list[str]:
        """Put the images not yet in the pool into it; returns their ids (access checked by the caller)."""
        present = self._pool.present(project_id, (image.id for image in images))
        new = list({image.id: image for image in images if image.id not in present}.values())
        if new:
            self._pool.add(project_id, new, actor_sub)
        return [image.id for image in new]

    def remove(self, actor: Identity, project_id: str, image_id: str) -> None:
        """Take an image out of the pool; refused (409) while one of the project's tasks uses it."""
        self._access.require(actor, project_id, "pool.write")
        if self._jobs.in_project_tasks(project_id, image_id):
            raise ConflictError(f"Shared image '{image_id}' is used by a task of this project; "
                                "delete the task first")
        self._pool.remove(project_id, image_id)
        self._activity.record(actor, "pool", project_id, "image_removed", project_id=project_id,
                              summary="Removed 1 image from the pool", details={"image_id": image_id})

    def require_members(self, project_id: str, image_ids: list[str]) -> None:
        """422 naming every id that is not in the pool (task creation from pool images)."""
        present = self._pool.present(project_id, image_ids)
        outside = [image for image in image_ids if image not in present]
        if outside:
            raise ValidationError(
                f"{len(outside)} image(s) are not in the project pool: {', '.join(outside[:10])}"
                + (" …" if len(outside) > 10 else ""),
                [{"field": "shared_image_ids", "id": image, "message": "not in the project pool"} for image in outside])
