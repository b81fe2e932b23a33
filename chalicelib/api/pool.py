"""A project's pool: the registry images it works on (pools of projects overlap freely)."""
from __future__ import annotations

from chalice import Blueprint

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.schemas.projects import PoolAddBody, PoolAddOut
from chalicelib.services.container import services

bp = Blueprint(__name__)
BASE = "/api/v1/projects"


@endpoint(bp, f"{BASE}/{{project_id}}/images", "POST", body=PoolAddBody, response=PoolAddOut)
def add_pool_images(project_id, identity, body: PoolAddBody):
    """Add registry images to the project pool (idempotent)."""
    change = services().pool.add(identity, project_id, body.shared_image_ids)
    data = PoolAddOut(added=change.added, already_in_pool=change.already_in_pool, unknown=change.unknown,
                      not_ready=change.not_ready, total_added=len(change.added),
                      total_already_in_pool=len(change.already_in_pool), total_unknown=len(change.unknown),
                      total_not_ready=len(change.not_ready))
    message = f"Added {len(change.added)} image(s) to the pool"
    if change.not_ready:
        message += f"; {len(change.not_ready)} not added: not ready (failed or missing)"
    return ok(data, message)


@endpoint(bp, f"{BASE}/{{project_id}}/images/{{image_id}}", "DELETE")
def remove_pool_image(project_id, image_id, identity):
    """Take an image out of the pool; 409 while one of the project's tasks uses it."""
    services().pool.remove(identity, project_id, image_id)
    return ok({"shared_image_id": image_id}, "Image removed from the pool")
