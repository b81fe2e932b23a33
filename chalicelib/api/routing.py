"""`endpoint`: how every route is declared.

It registers the Chalice route, parses and validates the query and body with the route's
pydantic models (unknown fields rejected), resolves the caller's identity, maps domain errors to
the error envelope, and records the route's models for the OpenAPI document.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

import pydantic
from aws_lambda_powertools import Logger
from chalice import Blueprint
from chalice.app import Request

from chalicelib import errors
from chalicelib.api import responses
from chalicelib.api.auth import jwt_auth
from chalicelib.api.pipeline_auth import pipeline_of
from chalicelib.schemas import documents
from chalicelib.services.container import services
from chalicelib.services.identity import Identity

logger = Logger(child=True)


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    summary: str
    tag: str
    query: type[pydantic.BaseModel] | None
    body: type[pydantic.BaseModel] | None
    response: Any
    status: int
    public: bool
    paginated: bool
    also: dict[int, Any]
    enveloped: bool
    pipeline: bool = False


ROUTES: list[RouteSpec] = []


def field_errors(exc: pydantic.ValidationError, location: str) -> list[dict[str, Any]]:
    details = []
    for err in exc.errors(include_url=False):
        path = ".".join(str(part) for part in err["loc"]) or location
        # Our validators' messages, without pydantic's "Value error, " in front of them.
        message = err["msg"].removeprefix("Value error, ")
        details.append({"field": path, "location": location, "message": message, "type": err["type"]})
    return details


SHOWN = 5  # problems spelled out in the message; `details` has them all


def _validation_error(exc: pydantic.ValidationError, location: str) -> errors.ValidationError:
    """One line a person can act on: each field with what is wrong with it (a rule across fields,
    such as min <= max, has no field of its own: its message says which)."""
    details = field_errors(exc, location)
    parts = [detail["message"] if detail["field"] == location else f"{detail['field']} ({detail['message']})"
             for detail in details[:SHOWN]]
    more = f"; and {len(details) - SHOWN} more" if len(details) > SHOWN else ""
    return errors.ValidationError(f"Invalid {location}: {'; '.join(parts)}{more}", details)


def parse_body(request: Request, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    raw = request.raw_body or b""
    if not raw.strip():
        raw = b"{}"
    document = documents.read_body(raw)
    if not isinstance(document, dict):
        raise errors.BadRequestError("Request body must be a JSON object")
    try:
        # Strictly, as JSON: `true` is no number and `0` no boolean, as the document says.
        return model.model_validate_json(raw, strict=True)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc, "body") from exc


def parse_query(request: Request, model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    params: dict[str, Any] = {}
    query_params = request.query_params or {}
    for name in query_params:
        values = query_params.getlist(name)
        field = model.model_fields.get(name)
        is_list = field is not None and getattr(field.annotation, "__origin__", None) is list
        if is_list:
            params[name] = [item for value in values for item in value.split(",") if item]
        else:
            params[name] = values[-1]
    try:
        return model.model_validate(params)
    except pydantic.ValidationError as exc:
        raise _validation_error(exc, "query") from exc


def identity_of(request: Request) -> Identity:
    context = (request.context or {}).get("authorizer") or {}
    if not context.get("principalId"):
        raise errors.UnauthorizedError("Missing or invalid bearer token")
    identity = Identity(
        sub=context["principalId"],
        email=context.get("email") or None,
        email_verified=context.get("email_verified") == "true",
        groups=tuple(json.loads(context.get("groups") or "[]")),
        is_admin=context.get("is_admin") == "true",
    )
    services().users.record_seen(identity)
    return identity


def endpoint(
    bp: Blueprint,
    path: str,
    method: str = "GET",
    *,
    query: type[pydantic.BaseModel] | None = None,
    body: type[pydantic.BaseModel] | None = None,
    response: Any = None,
    status: int = 200,
    public: bool = False,
    paginated: bool = False,
    also: dict[int, Any] | None = None,
    enveloped: bool = True,
    pipeline: bool = False,
) -> Callable:
    """Declare a route. The view receives URL params, then `query=`, `body=`, `identity=` as declared.

    `status` and `response` are the usual success; `also` maps every other success status the
    view can answer to its data model (e.g. `{202: OperationOut}` for work that goes async).
    `enveloped=False`: the view answers a JSON object of its own, not the data envelope.
    `pipeline=True`: an ML pipeline's route: no bearer token, an HMAC signature instead (the view
    receives `pipeline=`; api/pipeline_auth.py)."""

    def decorate(view: Callable) -> Callable:
        ROUTES.append(
            RouteSpec(
                path=path,
                method=method,
                summary=(view.__doc__ or view.__name__).strip().splitlines()[0],
                tag=view.__module__.rsplit(".", 1)[-1],
                query=query,
                body=body,
                response=response,
                status=status,
                public=public,
                paginated=paginated,
                also=dict(also or {}),
                enveloped=enveloped,
                pipeline=pipeline,
            )
        )

        @functools.wraps(view)
        def handle(**url_params: Any):
            request = bp.current_request
            try:
                kwargs: dict[str, Any] = dict(url_params)
                if pipeline:
                    kwargs["pipeline"] = pipeline_of(request)
                elif not public:
                    kwargs["identity"] = identity_of(request)
                if query is not None:
                    kwargs["query"] = parse_query(request, query)
                if body is not None:
                    kwargs["body"] = parse_body(request, body)
                return view(**kwargs)
            except errors.PixelpoolError as exc:
                if isinstance(exc, errors.StoreError):
                    logger.exception("store failure", extra={"path": path})
                return responses.error(exc)
            except Exception:
                logger.exception("unhandled error", extra={"path": path})
                return responses.internal_error()

        bp.route(path, methods=[method], authorizer=None if public or pipeline else jwt_auth)(handle)
        return view

    return decorate
