"""API Gateway behaviour that `chalice local` does not reproduce.

A Lambda authorizer that raises `Exception("Unauthorized")` makes API Gateway answer 401; chalice's
local gateway lets the exception escape as a 500. Here it becomes the same 401 — with the body the
template's `UnauthorizedResponse` gateway response gives on AWS.
"""
from __future__ import annotations

import json

from chalice import local

from chalicelib.api.responses import error_body

_UNAUTHORIZED = json.dumps(error_body("unauthorized", "Missing or invalid bearer token", 401)).encode()
_FORBIDDEN = json.dumps(error_body("forbidden", "Not allowed", 403)).encode()


def emulate_gateway_responses() -> None:
    if getattr(local.LocalGatewayAuthorizer, "_pixelpool", False):
        return
    authorize = local.LocalGatewayAuthorizer.authorize

    def authorize_like_api_gateway(self, raw_path, lambda_event, lambda_context):
        try:
            return authorize(self, raw_path, lambda_event, lambda_context)
        except local.NotAuthorizedError as exc:
            raise local.NotAuthorizedError(exc.headers, _UNAUTHORIZED) from exc
        except local.ForbiddenError as exc:
            raise local.ForbiddenError(exc.headers, _FORBIDDEN) from exc
        except local.LocalGatewayException:
            raise
        except Exception as exc:
            if str(exc) != "Unauthorized":
                raise
            headers = {"x-amzn-RequestId": lambda_context.aws_request_id, "x-amzn-ErrorType": "UnauthorizedException"}
            raise local.NotAuthorizedError(headers, _UNAUTHORIZED) from exc

    local.LocalGatewayAuthorizer.authorize = authorize_like_api_gateway
    local.LocalGatewayAuthorizer._pixelpool = True
