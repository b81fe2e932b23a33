#!/usr/bin/env python3
"""Render docs/api.md, the API reference, from the OpenAPI document the API serves.

Why: `GET /api/v1/openapi.json` is complete but raw JSON; finding a request body's fields means
following `$ref`s by hand. This page says the same things for a reader: every operation grouped by
tag, who may call it, its parameters, its request body as a field table (nested models expanded in
place, with a JSON example built from the schema) and its answers by status, then the response
models once each. It is generated, never edited: the document is built in-process from the routes'
pydantic models (`chalicelib/api/openapi.py`; importing the app needs no AWS), and
tests/unit/test_api_docs.py fails when the committed page differs from what this renders now.

    .venv/bin/python -m scripts.api_docs           # writes docs/api.md
    .venv/bin/python -m scripts.api_docs --check   # exit status 1 if docs/api.md is stale
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from http import HTTPStatus
from pathlib import Path
from typing import Any

import pydantic

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "docs" / "api.md"
REF_PREFIX = "#/components/schemas/"
METHOD_ORDER = ["get", "post", "put", "patch", "delete"]
COMMAND = ".venv/bin/python -m scripts.api_docs"


def load() -> tuple[dict[str, Any], dict[str, type[pydantic.BaseModel]]]:
    """The OpenAPI document, as `GET /api/v1/openapi.json` serves it, and the request body models."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import app  # noqa: F401  (registers every route)
    from chalicelib.api.openapi import document_dict
    from chalicelib.api.routing import ROUTES

    models = {spec.body.__name__: spec.body for spec in ROUTES if spec.body is not None}
    return json.loads(json.dumps(document_dict())), models


def slug(text: str) -> str:
    """GitHub's heading anchor: lower case, punctuation other than `-` and `_` dropped, spaces as `-`."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def cell(text: Any) -> str:
    """One table cell: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref", "")
    return ref[len(REF_PREFIX):] if ref.startswith(REF_PREFIX) else None


def split_null(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """`anyOf: [X, {"type": "null"}]` → (X, nullable); anything else → (schema, False)."""
    options = schema.get("anyOf")
    if options:
        others = [option for option in options if option.get("type") != "null"]
        if len(others) == 1:
            outer = {key: value for key, value in schema.items() if key not in ("anyOf", "default", "title")}
            return {**others[0], **outer}, len(others) < len(options)
    return schema, False


class Renderer:
    """Markdown for one OpenAPI document; response models met on the way are rendered last, once each."""

    def __init__(self, document: dict[str, Any], models: dict[str, type[pydantic.BaseModel]]) -> None:
        self.doc = document
        self.models = models  # request body models by schema name, to check the examples
        self.schemas: dict[str, dict[str, Any]] = document["components"]["schemas"]
        self.linked: set[str] = set()  # response models the page documents in "Response models"

    # -- schemas -----------------------------------------------------------------------------

    def type_of(self, schema: dict[str, Any], link: bool = False) -> str:
        inner, nullable = split_null(schema)
        text = self._type(inner, link)
        return f"nullable {text}" if nullable else text

    def _type(self, schema: dict[str, Any], link: bool) -> str:
        name = ref_name(schema)
        if name:
            if link:
                self.linked.add(name)
                return f"[{name}](#{slug(name)})"
            return name
        if "anyOf" in schema:
            return " or ".join(self.type_of(option, link) for option in schema["anyOf"])
        kind = schema.get("type", "any")
        if kind == "array":
            return f"array of {self.type_of(schema.get('items', {}), link)}"
        if kind == "object":
            extra = schema.get("additionalProperties")
            if isinstance(extra, dict):
                return f"object of string → {self.type_of(extra, link)}"
            if schema.get("properties"):
                return "object"
            return "object (free-form JSON)" if extra is not False else "object"
        return f"{kind} ({schema['format']})" if isinstance(schema.get("format"), str) else kind

    @staticmethod
    def values(schema: dict[str, Any]) -> str:
        inner, _ = split_null(schema)
        if "enum" in inner:
            return "one of " + ", ".join(f"`{json.dumps(value)}`" for value in inner["enum"])
        return f"always `{json.dumps(inner['const'])}`" if "const" in inner else ""

    def constraints(self, schema: dict[str, Any]) -> str:
        inner, _ = split_null(schema)
        if inner.get("type") == "array" and isinstance(inner.get("items"), dict):
            item_rules = self.constraints(inner["items"])
        else:
            item_rules = ""
        rules = [self.values(inner)] if self.values(inner) else []
        for low, high, unit in (("minLength", "maxLength", "chars"), ("minItems", "maxItems", "items")):
            if high in inner:
                rules.append(f"{inner[low]}–{inner[high]} {unit}" if low in inner else f"at most {inner[high]} {unit}")
            elif low in inner:
                rules.append(f"at least {inner[low]} {unit}")
        if "minimum" in inner and "maximum" in inner:
            rules.append(f"{inner['minimum']} to {inner['maximum']}")
        else:
            bounds = [f"≥ {inner['minimum']}" if "minimum" in inner else None,
                      f"> {inner['exclusiveMinimum']}" if "exclusiveMinimum" in inner else None,
                      f"≤ {inner['maximum']}" if "maximum" in inner else None,
                      f"< {inner['exclusiveMaximum']}" if "exclusiveMaximum" in inner else None]
            if any(bounds):
                rules.append(" and ".join(bound for bound in bounds if bound))
        if "pattern" in inner:
            rules.append(f"matches `{inner['pattern']}`")
        if item_rules:
            rules.append(f"each item: {item_rules}")
        return "; ".join(rules)

    def rows(self, schema: dict[str, Any], prefix: str = "", seen: tuple[str, ...] = ()) -> list[list[str]]:
        """Field rows of an object schema; nested models expanded in place as `parent.child`
        (`parent[].child` inside arrays, `parent.*.child` inside maps)."""
        name = ref_name(schema)
        if name:
            if name in seen:
                return []
            seen, schema = (*seen, name), self.schemas[name]
        required = set(schema.get("required", []))
        rows = []
        for field, prop in sorted(schema.get("properties", {}).items()):
            default = f"`{json.dumps(prop['default'])}`" if "default" in prop else ""
            description = prop.get("description") or split_null(prop)[0].get("description", "")
            rows.append([f"`{prefix}{field}`", self.type_of(prop), "yes" if field in required else "no",
                         default, self.constraints(prop), description])
            inner, _ = split_null(prop)
            nested, suffix = inner, "."
            while True:
                if nested.get("type") == "array" and isinstance(nested.get("items"), dict):
                    nested, suffix = split_null(nested["items"])[0], suffix[:-1] + "[]."
                elif nested.get("type") == "object" and isinstance(nested.get("additionalProperties"), dict):
                    nested, suffix = split_null(nested["additionalProperties"])[0], suffix[:-1] + ".*."
                else:
                    break
            if ref_name(nested) or nested.get("properties"):
                rows.extend(self.rows(nested, f"{prefix}{field}{suffix}", seen))
        return rows

    def table(self, headers: list[str], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                *("| " + " | ".join(cell(value) for value in row) + " |" for row in rows)]

    def example(self, schema: dict[str, Any], seen: tuple[str, ...] = ()) -> Any:
        """A short valid-looking value: required fields (every field when none is required)."""
        name = ref_name(schema)
        if name:
            if name in seen:
                return {}
            seen, schema = (*seen, name), self.schemas[name]
        schema, _ = split_null(schema)
        if "anyOf" in schema:
            return self.example(schema["anyOf"][0], seen)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][0]
        if schema.get("default") is not None:
            return schema["default"]
        kind = schema.get("type")
        if kind == "object":
            properties = schema.get("properties", {})
            keys = [key for key in properties if key in schema.get("required", [])] or list(properties)
            if keys:
                return {key: self.example(properties[key], seen) for key in sorted(keys)}
            extra = schema.get("additionalProperties")
            return {"key": self.example(extra, seen)} if isinstance(extra, dict) else {}
        if kind == "array":
            return [self.example(schema.get("items", {}), seen)] * max(1, schema.get("minItems", 1))
        if kind == "integer":
            return max(schema.get("minimum", 1), schema.get("exclusiveMinimum", 0) + 1)
        if kind == "number":
            return max(schema.get("minimum", 1.0), schema.get("exclusiveMinimum", 0) + 1.0)
        if kind == "boolean":
            return True
        if kind == "string":
            if schema.get("format") == "date-time":
                return "2026-01-01T00:00:00Z"
            candidates = ["string", "#336699", "name", "user@example.com"]
            pattern = schema.get("pattern")
            value = next((c for c in candidates if not pattern or re.fullmatch(pattern, c)), "string")
            return value[: schema.get("maxLength", len(value))].ljust(schema.get("minLength", 0), "x")
        return None

    def refusal(self, name: str | None, example: Any) -> str:
        """What the body's model says of `example`, when a rule across fields refuses it."""
        model = self.models.get(name)
        if model is None:
            return ""
        try:
            model.model_validate_json(json.dumps(example), strict=True)
        except pydantic.ValidationError as exc:
            return "; ".join(
                ("`" + ".".join(map(str, error["loc"])) + "`: " if error["loc"] else "")
                + error["msg"].removeprefix("Value error, ") for error in exc.errors(include_url=False))
        return ""

    # -- operations --------------------------------------------------------------------------

    def caller(self, operation: dict[str, Any]) -> str:
        security = operation.get("security", self.doc.get("security", []))
        if not security:
            return "anyone: no token"
        schemes = self.doc["components"]["securitySchemes"]
        described = []
        for requirement in security:
            for scheme_name in sorted(requirement):
                scheme = schemes[scheme_name]
                if scheme.get("scheme") == "bearer":
                    described.append("a signed-in user: `Authorization: Bearer <JWT>`")
                else:
                    described.append(f"an ML pipeline: HMAC-signed request, `{scheme['name']}` with `X-ML-Timestamp` "
                                     "(and `X-ML-Key-Id`), no bearer token; see [analyses.md](analyses.md)")
        return "; or ".join(described)

    def operation(self, method: str, path: str, op: dict[str, Any]) -> list[str]:
        lines = [f"### `{method.upper()} {path}`", "", op.get("summary", ""), ""]
        if op.get("description"):
            lines += [op["description"], ""]
        lines += [f"**Who may call:** {self.caller(op)}", ""]
        params = op.get("parameters", [])
        if params:
            rows = [[f"`{p['name']}`", p["in"], self.type_of(p.get("schema", {})),
                     "yes" if p.get("required") else "no",
                     f"`{json.dumps(p['schema']['default'])}`" if "default" in p.get("schema", {}) else "",
                     self.constraints(p.get("schema", {})), p.get("description", "")] for p in params]
            lines += ["**Parameters**", "", *self.table(
                ["Name", "In", "Type", "Required", "Default", "Constraints", "Description"], rows), ""]
        body = op.get("requestBody")
        if body:
            schema = body["content"]["application/json"]["schema"]
            name = ref_name(schema)
            required = "required" if body.get("required") else "optional: no body reads as `{}`"
            lines += [f"**Request body** (`{name}`, JSON, {required})", ""]
            model_description = self.schemas.get(name, {}).get("description")
            if model_description:
                lines += ["> " + " ".join(model_description.split()), ""]
            rows = self.rows(schema)
            if rows:
                lines += self.table(["Field", "Type", "Required", "Default", "Constraints", "Description"], rows)
            else:
                lines.append("No fields.")
            example = self.example(schema)
            lines += ["", "```json", json.dumps(example, indent=2, ensure_ascii=False), "```", ""]
            refusal = self.refusal(name, example)
            if refusal:
                lines += [f"The example above is refused (422) by a rule across fields: {refusal}.", ""]
        lines += ["**Responses**", ""]
        for status, response in sorted(op.get("responses", {}).items(), key=lambda item: (item[0] == "default", item[0])):
            lines.append(f"- {self.response(status, response)}")
        return lines + [""]

    def response(self, status: str, response: dict[str, Any]) -> str:
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        if status == "default":
            return ("**error** (any 4xx/5xx): the [error envelope](#errors) "
                    "`{\"error\": {\"code\", \"message\", \"details\"}, \"status_code\"}`")
        head = f"**{status} {HTTPStatus(int(status)).phrase}**"
        if 300 <= int(status) < 400:
            return f"{head}: a redirect; the `Location` header holds the target"
        properties = schema.get("properties", {})
        if "data" not in properties:
            return f"{head}: a JSON object of its own (not the data envelope)"
        data = properties["data"]
        shape = f"`data`: {self.type_of(data, link=True)}" if data else "`data`: any JSON (the route declares no model)"
        if "meta" in properties:
            shape += f"; `meta`: {self.type_of(properties['meta'], link=True)} (this page of the list)"
        return f"{head}: {shape}"

    # -- page --------------------------------------------------------------------------------

    def render(self) -> str:
        groups: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
        for path, methods in self.doc["paths"].items():
            for method, op in methods.items():
                groups.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
        for ops in groups.values():
            ops.sort(key=lambda item: (item[0], METHOD_ORDER.index(item[1]) if item[1] in METHOD_ORDER else 99))
        info = self.doc["info"]
        count = sum(len(ops) for ops in groups.values())
        lines = [
            "# API reference",
            "",
            "<!-- Generated by scripts/api_docs.py from the OpenAPI document; do not edit. "
            f"Regenerate: {COMMAND} -->",
            "",
            f"{info['title']} {info['version']}: {info.get('description', '')} This page is rendered from the "
            "OpenAPI document the API serves at `GET /api/v1/openapi.json` (built from the routes' pydantic "
            f"models), {count} operations grouped by tag. Regenerate it with `{COMMAND}`; "
            "`tests/unit/test_api_docs.py` fails when it is stale.",
            "",
            "## Conventions",
            "",
            "- Every operation needs `Authorization: Bearer <JWT>` unless its **Who may call** line says otherwise.",
            "- Success answers are the data envelope `{\"data\": …, \"message\": \"…\", \"status_code\": N}` "
            "(lists add `meta`); the **Responses** lines give each status's `data`, the models are under "
            "[Response models](#response-models).",
            "- Request bodies are validated strictly as JSON and unknown fields are refused (422 naming them). "
            "Nested fields are written `parent.child`, `parent[].child` (each item of an array) and "
            "`parent.*.child` (each value of a map). The JSON examples show the required fields "
            "(every field when none is required), built from the schema and checked against the route's model; "
            "where a rule across fields needs more, the line under the example says what.",
            "",
            "<a id=\"errors\"></a>An error answers with its HTTP status and the error envelope:",
            "",
            *self.table(["Field", "Type", "Required", "Default", "Constraints", "Description"],
                        self.rows(self.schemas["Error"])),
            "",
            "## Contents",
            "",
        ]
        for tag in sorted(groups):
            lines.append(f"- [{tag}](#{slug(tag)})")
            for path, method, _ in groups[tag]:
                lines.append(f"  - [`{method.upper()} {path}`](#{slug(f'{method} {path}')})")
        lines.append("- [Response models](#response-models)")
        lines.append("")
        for tag in sorted(groups):
            lines += [f"## {tag}", ""]
            for path, method, op in groups[tag]:
                lines += self.operation(method, path, op)
        lines += ["## Response models", "",
                  "The `data` of success answers; a model's fields that are models link to them.", ""]
        done: set[str] = set()
        while self.linked - done:
            name = sorted(self.linked - done)[0]
            done.add(name)
            schema = self.schemas[name]
            lines += [f"### {name}", ""]
            if schema.get("description"):
                lines += [" ".join(schema["description"].split()), ""]
            rows = [[f"`{field}`", self.type_of(prop, link=True), self.values(prop),
                     prop.get("description") or split_null(prop)[0].get("description", "")]
                    for field, prop in sorted(schema.get("properties", {}).items())]
            lines += [*self.table(["Field", "Type", "Values", "Description"], rows), ""]
        return "\n".join(lines).rstrip("\n") + "\n"


def render() -> str:
    return Renderer(*load()).render()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md differs from what would be written")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        current = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if current != text:
            print(f"{TARGET.relative_to(ROOT)} is stale: run `{COMMAND}` and commit the result", file=sys.stderr)
            return 1
        print(f"{TARGET.relative_to(ROOT)} is up to date")
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
