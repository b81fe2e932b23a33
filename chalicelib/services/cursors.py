"""Opaque page cursors: what the API hands out to continue a listing, and reads back."""
from __future__ import annotations

import base64

from chalicelib.errors import BadRequestError


def encode(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode(cursor: str) -> str:
    """The position a cursor carries; 400 when it is not one this API returned."""
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except ValueError as exc:
        raise malformed() from exc


def malformed() -> BadRequestError:
    return BadRequestError("cursor is not one this API returned; start again without it",
                           [{"field": "cursor", "message": "malformed"}])
