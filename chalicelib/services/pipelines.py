"""Who may call the pipeline routes: requests signed with HMAC-SHA256 by an external ML pipeline.

A request carries `X-ML-Timestamp` (Unix seconds), `X-ML-Signature` (hex HMAC-SHA256) and
optionally `X-ML-Key-Id` (the key's id; `default` when absent). The signed message is four lines
joined by `\\n`, with no newline at the end:

    <timestamp>
    <METHOD>
    <path>[?<query>]
    <hex SHA-256 of the raw body (of b"" when there is none)>

`path` is the route's path as the API has it (`/api/v1/analyses/…`, no stage prefix); `query` is
the query's `name=value` pairs sorted, each percent-encoded as RFC 3986 says (`canonical_query`).
A timestamp more than `ml_signature_tolerance_seconds` (300) away from the server's clock is
refused, and each signature is accepted once: a second delivery of the same signed request answers
409 `replayed_request` and does nothing (a retry signs again, with a new timestamp).

Keys: the secret `ml_keys_secret` holds `{"keys": {"<key id>": "<secret>", ...}}` (two entries
while a key is rotated); `ml_callback_hmac_secret` (the seed's `ML_CALLBACK_HMAC_SECRET`) is the
key `default` unless the secret names one. They are cached per warm instance for
`ml_keys_cache_seconds`; an unknown key id re-reads the secret at most every few seconds, so a key
added for rotation works at once.
"""
from __future__ import annotations

import hashlib
import hmac
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping
from urllib.parse import quote, urlencode

from chalicelib.config import Settings
from chalicelib.errors import NotFoundError, ReplayError, UnauthorizedError, ValidationError
from chalicelib.store.pipelines import SignatureRepository

SIGNATURE_HEADER = "x-ml-signature"
TIMESTAMP_HEADER = "x-ml-timestamp"
KEY_ID_HEADER = "x-ml-key-id"
DEFAULT_KEY_ID = "default"
REFRESH_UNKNOWN_AFTER = 5.0  # seconds: an unknown key id re-reads the secret no more often than this


def canonical_query(pairs: Iterable[tuple[str, str]]) -> str:
    """The query as signed: pairs sorted by name then value, RFC 3986 percent-encoded."""
    return urlencode(sorted(pairs), quote_via=quote)


def message(timestamp: str, method: str, path: str, query: str, body: bytes) -> bytes:
    target = f"{path}?{query}" if query else path
    return "\n".join([timestamp, method.upper(), target, hashlib.sha256(body).hexdigest()]).encode()


def sign(secret: str, timestamp: str, method: str, path: str, query: str, body: bytes) -> str:
    """The hex HMAC-SHA256 a pipeline sends as `X-ML-Signature`."""
    return hmac.new(secret.encode(), message(timestamp, method, path, query, body), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedRequest:
    method: str
    path: str
    query: str  # canonical_query of the request's parameters
    body: bytes
    headers: Mapping[str, str]  # names in lower case


@dataclass(frozen=True)
class Pipeline:
    """An authenticated pipeline: the key it signed with."""

    key_id: str


class PipelineAuth:
    def __init__(self, settings: Settings, signatures: SignatureRepository,
                 read_keys: Callable[[str], dict[str, str]], clock: Callable[[], float] = time.time) -> None:
        self._settings = settings
        self._signatures = signatures
        self._read_keys = read_keys
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str, str] = {}
        self._read_at: float | None = None

    def require_enabled(self) -> None:
        if not self._settings.ml_analysis_enabled:
            raise NotFoundError("ML analyses are not enabled on this deployment (ML_ANALYSIS_ENABLED)")

    def require_model(self, model_name: str) -> None:
        allowed = self._settings.allowed_models
        if model_name not in allowed:
            raise ValidationError(
                f"Model '{model_name}' is not allowed; allowed: {', '.join(sorted(allowed)) or 'none'}",
                [{"field": "model_name", "location": "body", "message": f"model '{model_name}' is not allowed",
                  "type": "model_not_allowed"}])

    def authenticate(self, request: SignedRequest) -> Pipeline:
        """The pipeline that signed `request`, or 401; 409 if its signature was used before."""
        self.require_enabled()
        headers = request.headers
        if headers.get("authorization"):
            raise UnauthorizedError("Pipeline routes accept no bearer token: sign the request (X-ML-Signature)")
        signature, timestamp = headers.get(SIGNATURE_HEADER, ""), headers.get(TIMESTAMP_HEADER, "")
        if not signature or not timestamp:
            raise UnauthorizedError("Missing X-ML-Signature or X-ML-Timestamp")
        if not (timestamp.isascii() and timestamp.isdigit()):
            raise UnauthorizedError("X-ML-Timestamp must be Unix seconds")
        tolerance = self._settings.ml_signature_tolerance_seconds
        skew = int(timestamp) - self._clock()
        if abs(skew) > tolerance:
            raise UnauthorizedError(f"X-ML-Timestamp is {abs(skew):.0f} s away from the server's clock "
                                    f"(at most {tolerance} s)")
        key_id = headers.get(KEY_ID_HEADER) or DEFAULT_KEY_ID
        secret = self._key(key_id)
        expected = sign(secret, timestamp, request.method, request.path, request.query, request.body)
        # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, not a 401).
        if not hmac.compare_digest(expected.encode(), signature.lower().encode("utf-8", "replace")):
            raise UnauthorizedError("X-ML-Signature does not match the request")
        if not self._signatures.claim(key_id, expected, int(timestamp) + tolerance + 60):
            raise ReplayError("This signed request was received before (replay): it had its effect then and "
                              "has none now; sign a retry again with a new timestamp",
                              [{"key_id": key_id, "timestamp": timestamp}])
        return Pipeline(key_id=key_id)

    def _key(self, key_id: str) -> str:
        keys, age = self._cached()
        if key_id not in keys and age > REFRESH_UNKNOWN_AFTER:
            keys, _ = self._cached(refresh=True)
        if key_id not in keys:
            raise UnauthorizedError(f"Unknown key id '{key_id}'")
        return keys[key_id]

    def _cached(self, refresh: bool = False) -> tuple[dict[str, str], float]:
        now = self._clock()
        with self._lock:
            stale = self._read_at is None or now - self._read_at >= self._settings.ml_keys_cache_seconds
            if refresh or stale:
                keys = {}
                if self._settings.ml_callback_hmac_secret:
                    keys[DEFAULT_KEY_ID] = self._settings.ml_callback_hmac_secret
                if self._settings.ml_keys_secret:
                    keys.update(self._read_keys(self._settings.ml_keys_secret))
                self._keys, self._read_at = keys, now
            return self._keys, now - (self._read_at or now)
