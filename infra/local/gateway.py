"""API Gateway behaviour that `chalice local` does not reproduce.

- A Lambda authorizer that raises `Exception("Unauthorized")` makes API Gateway answer 401;
  chalice's local gateway lets the exception escape as a 500. Here it becomes the same 401 — with
  the body the template's `UnauthorizedResponse` gateway response gives on AWS.
- A path or a method the API does not declare never reaches the Lambda on AWS: API Gateway answers
  with its MISSING_AUTHENTICATION_TOKEN gateway response, which the template turns into a 404 in
  the error envelope (`NoSuchRouteResponse`). chalice local answers 403 in its own body (unknown
  path) or lets the app answer 405 (unknown method); here both get the template's answer.

What this assumes of chalice's (private) local gateway — `LocalGateway.handle_request(method,
path, headers, body)`, its `_app_object` (the app), `RouteMatcher(routes).match_route(path)`
raising ValueError for an unknown path — is pinned by tests/functional/test_gateway.py.
"""
from __future__ import annotations

import functools
import json

from chalice import local

from chalicelib.api.responses import error_body

_UNAUTHORIZED = json.dumps(error_body("unauthorized", "Missing or invalid bearer token", 401)).encode()
_FORBIDDEN = json.dumps(error_body("forbidden", "Not allowed", 403)).encode()
# The same words as the template's NoSuchRouteResponse (tests/functional/test_gateway.py compares).
NO_SUCH_ROUTE_MESSAGE = "No route answers this method and path; the API's routes are in /api/v1/openapi.json"
_NO_SUCH_ROUTE = json.dumps(error_body("not_found", NO_SUCH_ROUTE_MESSAGE, 404)).encode()


class NoSuchRouteError(local.LocalGatewayException):
    CODE = 404


def _declares(gateway: local.LocalGateway, method: str, path: str) -> bool:
    routes = gateway._app_object.routes
    try:
        route = local.RouteMatcher(list(routes)).match_route(path).route
    except ValueError:
        return False
    return method in routes[route] or method == "OPTIONS"  # API Gateway answers CORS preflights


def emulate_gateway_responses() -> None:
    if getattr(local.LocalGatewayAuthorizer, "_pixelpool", False):
        return
    handle_request = local.LocalGateway.handle_request

    @functools.wraps(handle_request)
    def route_like_api_gateway(self, method, path, headers, body):
        if not _declares(self, method, path):
            raise NoSuchRouteError({"x-amzn-ErrorType": "MissingAuthenticationTokenException",
                                    "Content-Type": "application/json"}, _NO_SUCH_ROUTE)
        return handle_request(self, method, path, headers, body)

    local.LocalGateway.handle_request = route_like_api_gateway
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
