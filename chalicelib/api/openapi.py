"""OpenAPI 3.1 from the routes `endpoint` recorded and their pydantic models."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

import pydantic
from pydantic import TypeAdapter
from pydantic.json_schema import models_json_schema

from chalicelib.api.routing import ROUTES, RouteSpec
from chalicelib.schemas.base import PageMeta

REF = "#/components/schemas/{model}"
ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "status_code"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "array", "items": {"type": "object"}},
            },
        },
        "status_code": {"type": "integer"},
    },
}


def _models(spec: RouteSpec) -> list[type[pydantic.BaseModel]]:
    found = [spec.query, spec.body]
    for candidate in (spec.response, *spec.also.values()):
        if getattr(candidate, "__origin__", None) is list:
            candidate = candidate.__args__[0]
        found.append(candidate if isinstance(candidate, type) and issubclass(candidate, pydantic.BaseModel) else None)
    return [model for model in found if model is not None]


def _ref(model: type[pydantic.BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _data_schema(response: Any) -> dict[str, Any]:
    if response is None:
        return {}
    if getattr(response, "__origin__", None) is list:
        return {"type": "array", "items": _ref(response.__args__[0])}
    return _ref(response)


def _parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    params = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in re.findall(r"{(\w+)}", spec.path)
    ]
    if spec.query is not None:
        query_schema = TypeAdapter(spec.query).json_schema(ref_template=REF)
        required = set(query_schema.get("required", []))
        for name, prop in query_schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop,
                           "description": prop.get("description", "")})
    return params


def _envelope(response: Any, paginated: bool) -> dict[str, Any]:
    envelope: dict[str, Any] = {
        "type": "object",
        "required": ["data", "message", "status_code"],
        "properties": {"data": _data_schema(response), "message": {"type": "string"},
                       "status_code": {"type": "integer"}},
    }
    if paginated:
        envelope["properties"]["meta"] = _ref(PageMeta)
    return {"application/json": {"schema": envelope}}


def _accepts_no_body(model: type[pydantic.BaseModel]) -> bool:
    """Whether a request without a body (read as `{}`) is valid for `model`."""
    try:
        model.model_validate({})
    except pydantic.ValidationError:
        return False
    return True


def _operation(spec: RouteSpec) -> dict[str, Any]:
    content = (_envelope(spec.response, spec.paginated) if spec.enveloped
               else {"application/json": {"schema": {"type": "object"}}})
    successes = {str(spec.status): {"description": "success", "content": content}}
    for status, response in sorted(spec.also.items()):
        successes[str(status)] = {"description": "success", "content": _envelope(response, False)}
    operation: dict[str, Any] = {
        "summary": spec.summary,
        "tags": [spec.tag],
        "operationId": f"{spec.method.lower()}_{re.sub(r'[^a-zA-Z0-9]+', '_', spec.path).strip('_')}",
        "parameters": _parameters(spec),
        "responses": {
            **successes,
            "default": {"description": "error", "content": {"application/json": {"schema": {"$ref": REF.format(model="Error")}}}},
        },
    }
    if spec.body is not None:
        # A route reads a missing body as `{}`: the body is optional when `{}` is valid.
        operation["requestBody"] = {"required": not _accepts_no_body(spec.body),
                                    "content": {"application/json": {"schema": _ref(spec.body)}}}
    if spec.public:
        operation["security"] = []
    if spec.pipeline:
        operation["security"] = [{"pipeline_hmac": []}]
    return operation


@lru_cache(maxsize=1)
def document_dict() -> dict[str, Any]:
    models = {model for spec in ROUTES for model in _models(spec)} | {PageMeta}
    _, definitions = models_json_schema([(model, "validation") for model in sorted(models, key=lambda m: m.__name__)],
                                        ref_template=REF)
    schemas = dict(definitions.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for spec in ROUTES:
        paths.setdefault(spec.path, {})[spec.method.lower()] = _operation(spec)
    return {
        "openapi": "3.1.0",
        "info": {"title": "pixelpool", "version": "1.0.0",
                 "description": "Serverless backend for the image data behind machine-learning work."},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                # ML pipelines: X-ML-Signature with X-ML-Timestamp (and X-ML-Key-Id), docs/analyses.md
                "pipeline_hmac": {"type": "apiKey", "in": "header", "name": "X-ML-Signature"},
            },
        },
        "security": [{"bearer": []}],
    }


def document() -> str:
    import json

    return json.dumps(document_dict())
