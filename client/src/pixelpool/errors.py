"""What can go wrong, as exceptions a script can catch by kind and a person can read in one line."""
from __future__ import annotations

from typing import Any


class PixelpoolError(Exception):
    """Base of every error the SDK raises."""


class ConfigError(PixelpoolError):
    """No endpoint or no token: nothing was sent."""


class TransportError(PixelpoolError):
    """The API could not be reached (connection refused, timeout) after every retry."""


class TimeoutError(PixelpoolError):  # noqa: A001 - the SDK's own: waiting on the server took too long
    """A wait (ingest, operation, export) did not finish within its deadline."""


class TransferError(PixelpoolError):
    """Bytes could not be moved to or from S3 after every retry, or arrived with the wrong size."""


class ApiError(PixelpoolError):
    """An answer in the API's error envelope: `{"error": {code, message, details}, "status_code"}`.

    `details` are the API's entries (`field`, `location`, `message`, `type`, or `file`/`reason`);
    `str()` is one line naming the status, the code, the message and each field.
    """

    def __init__(self, status: int, code: str, message: str, details: list[dict[str, Any]] | None = None,
                 method: str = "", path: str = "") -> None:
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.method, self.path = method, path
        super().__init__(self.line())

    @property
    def fields(self) -> list[str]:
        """The fields the API named, in its order (`files.3.size`, `query.min_width`, …)."""
        return [str(detail["field"]) for detail in self.details if detail.get("field")]

    def line(self) -> str:
        named = []
        for detail in self.details[:5]:
            where = detail.get("field") or detail.get("file") or detail.get("member")
            what = detail.get("message") or detail.get("reason") or ""
            if where and (str(where) not in self.message or what not in self.message):
                named.append(f"{where}: {what}" if what else str(where))
        more = f" (+{len(self.details) - 5} more)" if len(self.details) > 5 else ""
        tail = f" [{'; '.join(named)}{more}]" if named else ""
        return f"{self.status} {self.code}: {self.message}{tail}"

    @classmethod
    def from_response(cls, status: int, body: Any, method: str = "", path: str = "") -> "ApiError":
        """Read the error envelope; an answer that is not one (a proxy's HTML page) keeps its first words."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            return cls(status, str(error.get("code") or "error"), str(error.get("message") or ""),
                       [d for d in error.get("details") or [] if isinstance(d, dict)], method, path)
        text = body if isinstance(body, str) else repr(body)
        return cls(status, "http_error", f"{method} {path} answered {status}: {text[:200]}".strip(), [], method, path)
