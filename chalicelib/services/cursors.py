"""Opaque page cursors: what the API hands out to continue a listing, and reads back.

One codec for every listing: a cursor is base64url of `[kind, position]` (JSON). Decoding checks
that it is well-formed, that it was made for this kind of listing, and — through the listing's
`read` — that the position has the shape the listing expects; anything else is a 400 naming
`cursor`, before any AWS call.
"""
from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, TypeVar

from chalicelib.errors import BadRequestError

T = TypeVar("T")


def encode(kind: str, position: Any) -> str:
    """The cursor of `position` (any JSON value) in a listing of `kind`."""
    document = json.dumps([kind, position], separators=(",", ":"), ensure_ascii=False)
    return base64.urlsafe_b64encode(document.encode()).decode().rstrip("=")


def decode(cursor: str, kind: str, read: Callable[[Any], T]) -> T:
    """The position a cursor of `kind` carries, through `read` (which raises ValueError, TypeError
    or KeyError on a position it does not accept); 400 when it is not one this API returned."""
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        document = json.loads(raw.decode())
    except (ValueError, RecursionError, binascii.Error) as exc:  # JSON and UTF-8 errors are ValueErrors
        raise malformed("not a cursor of this API") from exc
    if not (isinstance(document, list) and len(document) == 2):
        raise malformed("not a cursor of this API")
    found_kind, position = document
    if found_kind != kind:
        raise malformed(f"a cursor of another listing ({str(found_kind)[:40]!r}), not of {kind!r}")
    try:
        return read(position)
    except (ValueError, TypeError, KeyError) as exc:
        raise malformed(f"not a position of this listing: {exc}") from exc


def text(position: Any) -> str:
    """`read` for a position that is a non-empty string."""
    if not isinstance(position, str) or not position:
        raise ValueError("expected a non-empty string")
    return position


def malformed(reason: str = "malformed") -> BadRequestError:
    # The reason is in the message; the details keep the one shape clients match on.
    return BadRequestError(f"cursor is not one this API returned ({reason}); start again without it",
                           [{"field": "cursor", "location": "query", "message": "malformed",
                             "type": "value_error"}])
