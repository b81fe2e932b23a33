"""What a JSON document may hold: the rules of every request body, and of the free-form objects
(image metadata, annotation attributes) that are stored as they come.

- Every body (`read_body`): at most `MAX_BODY_DEPTH` levels, finite numbers only (`NaN`,
  `Infinity` and `1e400`, which reads as infinity, are no numbers), valid Unicode (no lone
  surrogates: `"\\ud800"` is valid JSON but no string can be stored or encoded).
- Every free-form object (`FreeForm`): what DynamoDB stores, checked before anything is written —
  at most `MAX_DOCUMENT_DEPTH` levels (DynamoDB's limit for nested attributes), no empty keys,
  numbers DynamoDB can hold (38 significant digits, magnitude 1e-130 to 1e126).
"""

import json
import math
import re
from decimal import Decimal
from typing import Annotated, Any, Iterator

from pydantic import AfterValidator, Field

from chalicelib.errors import BadRequestError, ValidationError

MAX_BODY_DEPTH = 64
MAX_DOCUMENT_DEPTH = 32
MAX_DIGITS = 38
SMALLEST = Decimal("1e-130")
LARGEST = Decimal("1e126")


def _walk(value: Any, path: str) -> Iterator[tuple[Any, str, int]]:
    """Every value of a document with its path and level (the document itself is level 1, what it
    holds level 2, ...), without recursion: a document may be deeper than Python's stack."""
    stack = [(value, path, 1)]
    while stack:
        node, where, level = stack.pop()
        yield node, where, level
        if isinstance(node, dict):
            stack.extend((child, f"{where}.{key}" if where else str(key), level + 1) for key, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, f"{where}.{n}" if where else str(n), level + 1) for n, child in enumerate(node))


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _depth_exceeds(document: Any, limit: int) -> bool:
    """Whether containers nest deeper than `limit` (scalars are not visited: bodies can be large)."""
    stack = [(document, 1)]
    while stack:
        node, level = stack.pop()
        if level > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return False


# A JSON string escape of a UTF-16 surrogate: the only way a lone surrogate gets into a body.
SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def read_body(raw: bytes) -> Any:
    """The JSON document of a request body, refused (400 unreadable, 422 naming the field) when it
    breaks a rule of every body."""
    unusual: list[str] = []

    def number(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            unusual.append(text)
        return value

    def constant(text: str) -> float:
        unusual.append(text)
        return float(text)

    try:
        document = json.loads(raw, parse_float=number, parse_constant=constant)
    except RecursionError as exc:
        raise BadRequestError(f"Request body nests deeper than {MAX_BODY_DEPTH} levels",
                              [_detail("body", f"nests deeper than {MAX_BODY_DEPTH} levels", "too_deep")]) from exc
    except ValueError as exc:  # not JSON, not UTF-8, or an integer of more than 4,300 digits
        raise BadRequestError(f"Request body is not valid JSON: {exc}") from exc
    if isinstance(document, (dict, list)) and _depth_exceeds(document, MAX_BODY_DEPTH):
        raise BadRequestError(f"Request body nests deeper than {MAX_BODY_DEPTH} levels",
                              [_detail("body", f"nests deeper than {MAX_BODY_DEPTH} levels", "too_deep")])
    if unusual or SURROGATE_ESCAPE.search(raw):
        problem = _value_problem(document)
        if problem:
            where, message, kind = problem
            raise ValidationError(f"Invalid body: {where}: {message}", [_detail(where, message, kind)])
    return document


def _detail(field: str, message: str, kind: str) -> dict[str, str]:
    return {"field": field, "location": "body", "message": message, "type": kind}


def _value_problem(document: Any) -> tuple[str, str, str] | None:
    """The first value of a body that is not a finite number or valid Unicode: (field, message, type)."""
    for node, where, _ in _walk(document, ""):
        if isinstance(node, float) and not math.isfinite(node):
            return (where or "body", f"{node} is not a finite number (NaN, Infinity and numbers beyond "
                                     "1.8e308 are refused)", "finite_number")
        texts = [node] if isinstance(node, str) else list(node) if isinstance(node, dict) else []
        if any(_has_lone_surrogate(text) for text in texts):
            return where or "body", "holds a lone UTF-16 surrogate: not valid Unicode", "unicode"
    return None


def _number_problem(number: int | float) -> str | None:
    if isinstance(number, float) and not math.isfinite(number):
        return f"{number} is not a finite number"
    exact = Decimal(number) if isinstance(number, int) else Decimal(repr(number))
    if exact == 0:
        return None
    # Significant digits without trailing zeros (`normalize` would round to the context's 28).
    digits = len("".join(map(str, exact.as_tuple().digits)).rstrip("0"))
    if digits > MAX_DIGITS:
        return f"has {digits} significant digits; at most {MAX_DIGITS} can be stored"
    if not SMALLEST <= abs(exact) < LARGEST:
        return f"{number} is outside the storable magnitude ({SMALLEST} to {LARGEST})"
    return None


def document_problem(document: Any) -> str | None:
    """The first reason `document` cannot be stored as a free-form object, naming where, or None."""
    for node, where, level in _walk(document, ""):
        at = f" at {where!r}" if where else ""
        if level > MAX_DOCUMENT_DEPTH and isinstance(node, (dict, list)):
            return f"nests deeper than {MAX_DOCUMENT_DEPTH} levels{at} (the storage limit)"
        if isinstance(node, dict) and "" in node:
            return f"has an empty key{at}: keys must be non-empty"
        if isinstance(node, dict) and any(_has_lone_surrogate(key) for key in node):
            return f"has a key{at} holding a lone UTF-16 surrogate: not valid Unicode"
        if isinstance(node, (int, float)) and not isinstance(node, bool):
            problem = _number_problem(node)
            if problem:
                return f"{problem}{at}"
        if isinstance(node, str) and _has_lone_surrogate(node):
            return f"holds a lone UTF-16 surrogate{at}: not valid Unicode"
    return None


def _storable(document: dict[str, Any]) -> dict[str, Any]:
    problem = document_problem(document)
    if problem:
        raise ValueError(problem)
    return document


# A free-form JSON object stored as given (image metadata, annotation attributes).
FreeForm = Annotated[dict[str, Any], AfterValidator(_storable),
                     Field(description=f"free-form JSON object: at most {MAX_DOCUMENT_DEPTH} levels, non-empty "
                                       f"keys, finite numbers of at most {MAX_DIGITS} digits")]
