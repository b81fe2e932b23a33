"""Domain errors. Every layer raises these; `chalicelib/api/responses.py` maps them to HTTP."""
from __future__ import annotations

from typing import Any


class PixelpoolError(Exception):
    """Base of every domain error; `code` is the machine-readable name in the error envelope."""

    code = "error"

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class ValidationError(PixelpoolError):
    """Input that is well-formed but not acceptable (422)."""

    code = "validation_error"


class BadRequestError(PixelpoolError):
    """Input that cannot be read at all: bad JSON, a forbidden path (400)."""

    code = "bad_request"


class UnauthorizedError(PixelpoolError):
    code = "unauthorized"


class ForbiddenError(PixelpoolError):
    code = "forbidden"


class NotFoundError(PixelpoolError):
    code = "not_found"


class ConflictError(PixelpoolError):
    code = "conflict"


class TooLargeError(PixelpoolError):
    """Input within the request's limits that is larger than what can be stored (413); the message
    names the limit and the actual size."""

    code = "too_large"


class StoreError(PixelpoolError):
    """An AWS call failed for a reason the caller cannot fix (500)."""

    code = "store_error"


class ImageRejectedError(PixelpoolError):
    """Bytes that are not an image we accept: empty, truncated, a bomb, a disallowed format (422).

    Ingestion records the image as `failed` with `message` as the reason; it never fails a batch.
    """

    code = "image_rejected"


class ReplayError(ConflictError):
    """A pipeline request whose signature was used before (409): it had its effect the first time."""

    code = "replayed_request"
