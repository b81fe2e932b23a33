"""The response envelope (`data`, `message`, `status_code`; errors under `error`), and the one place
domain errors become HTTP responses."""
from __future__ import annotations

import json
from typing import Any

from chalice import Response
from pydantic import BaseModel

from chalicelib import errors

STATUS_BY_ERROR: dict[type[errors.PixelpoolError], int] = {
    errors.BadRequestError: 400,
    errors.UnauthorizedError: 401,
    errors.ForbiddenError: 403,
    errors.NotFoundError: 404,
    errors.ConflictError: 409,
    errors.ValidationError: 422,
    errors.ImageRejectedError: 422,
    errors.TooLargeError: 413,
    errors.StoreError: 500,
}
JSON = {"Content-Type": "application/json"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_jsonable(item) for item in value]
    return value


def ok(data: Any, message: str, status_code: int = 200, meta: Any = None) -> Response:
    body: dict[str, Any] = {"data": _jsonable(data), "message": message, "status_code": status_code}
    if meta is not None:
        body["meta"] = _jsonable(meta)
    return Response(body=json.dumps(body), status_code=status_code, headers=JSON)


def error_body(code: str, message: str, status_code: int, details: list | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or []}, "status_code": status_code}


def error(exc: errors.PixelpoolError) -> Response:
    status = next((code for kind, code in STATUS_BY_ERROR.items() if isinstance(exc, kind)), 500)
    return Response(
        body=json.dumps(error_body(exc.code, exc.message, status, exc.details)), status_code=status, headers=JSON
    )


def internal_error() -> Response:
    return Response(
        body=json.dumps(error_body("internal_error", "An internal error occurred", 500)), status_code=500, headers=JSON
    )


def enveloped_framework_errors(event, get_response):
    """Chalice answers a few requests itself, before any view (415 for a body that is not JSON):
    its `{"Code", "Message"}` body is given the API's error envelope like every other error."""
    response = get_response(event)
    body = response.body if isinstance(response, Response) else None
    if isinstance(body, dict) and set(body) == {"Code", "Message"} and response.status_code >= 400:
        code = "".join(f"_{c.lower()}" if c.isupper() else c for c in body["Code"]).lstrip("_")
        message = body["Message"]
        if response.status_code == 415:
            message = f"{message}; send the body as JSON with 'Content-Type: application/json'"
        response.body = json.dumps(error_body(code, message, response.status_code))
        response.headers = {**(response.headers or {}), **JSON}
    return response
