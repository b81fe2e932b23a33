from __future__ import annotations

from chalice import Blueprint, Response

from chalicelib.api.responses import ok
from chalicelib.api.routing import endpoint
from chalicelib.config import get_settings
from chalicelib.schemas.system import HealthOut
from chalicelib.schemas.users import MeOut
from chalicelib.services.container import services

bp = Blueprint(__name__)


@endpoint(bp, "/health", response=HealthOut, public=True)
def health():
    """Liveness: the function answers; no dependency is called."""
    return ok(HealthOut(status="ok", stage=get_settings().stage), "OK")


@endpoint(bp, "/api/v1/openapi.json", public=True, enveloped=False)
def openapi():
    """The OpenAPI 3 document of this API, generated from its pydantic models."""
    from chalicelib.api.openapi import document

    return Response(body=document(), status_code=200, headers={"Content-Type": "application/json"})


@endpoint(bp, "/api/v1/me", response=MeOut)
def me(identity):
    """The caller as the system knows them."""
    user = services().users.me(identity)
    out = MeOut(
        sub=user.sub,
        email=identity.email,
        groups=list(identity.groups),
        is_admin=identity.is_admin,
        first_seen_at=user.first_seen_at,
    )
    return ok(out, "OK")
