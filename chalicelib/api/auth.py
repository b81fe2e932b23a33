"""The custom authorizer every non-public route uses.

API Gateway's contract: raising `Exception("Unauthorized")` answers 401; a policy without the
route answers 403. The identity travels to the route in the authorizer context.
"""
from __future__ import annotations

import json

from aws_lambda_powertools import Logger
from chalice import AuthResponse, Blueprint

from chalicelib.errors import UnauthorizedError
from chalicelib.services.auth import verify_token

bp = Blueprint(__name__)
logger = Logger(child=True)


@bp.authorizer(ttl_seconds=300)
def jwt_auth(auth_request):
    try:
        identity = verify_token(auth_request.token or "")
    except UnauthorizedError as exc:
        logger.info("token rejected", extra={"reason": exc.message})
        raise Exception("Unauthorized") from exc
    return AuthResponse(
        routes=["*"],
        principal_id=identity.sub,
        context={
            "email": identity.email or "",
            "email_verified": "true" if identity.email_verified else "false",
            "groups": json.dumps(list(identity.groups)),
            "is_admin": "true" if identity.is_admin else "false",
        },
    )
