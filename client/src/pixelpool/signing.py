"""HMAC signing of the ML-pipeline routes, so a pipeline posts predictions in three lines:

    from pixelpool import Pipeline
    pipeline = Pipeline("http://127.0.0.1:8000", secret=os.environ["ML_CALLBACK_HMAC_SECRET"])
    pipeline.post(f"/api/v1/analyses/{analysis_id}/annotations:bulk", {"annotations": predictions})

The rule is the server's (docs/analyses.md): `X-ML-Signature` is the hex HMAC-SHA256 of
"<timestamp>\\n<METHOD>\\n<path>[?<sorted, RFC 3986-encoded query>]\\n<hex SHA-256 of the body>".
"""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

import httpx

from pixelpool.errors import ApiError


class Signer:
    """Signs requests with one secret (and key id). Each request gets its own second: the server
    accepts a signature once, so two identical requests signed in the same second would be a replay."""

    def __init__(self, secret: str, key_id: str | None = None) -> None:
        self.secret, self.key_id = secret, key_id
        self._last = 0
        self._lock = threading.Lock()

    def headers(self, method: str, url: str, body: bytes = b"", timestamp: int | None = None) -> dict[str, str]:
        parts = urlsplit(url)
        query = urlencode(sorted(parse_qsl(parts.query, keep_blank_values=True)), quote_via=quote)
        target = f"{parts.path}?{query}" if query else parts.path
        if timestamp is None:
            with self._lock:
                self._last = max(int(time.time()), self._last + 1)
                timestamp = self._last
        text = "\n".join([str(timestamp), method.upper(), target, hashlib.sha256(body).hexdigest()])
        headers = {"X-ML-Timestamp": str(timestamp), "Content-Type": "application/json",
                   "X-ML-Signature": hmac.new(self.secret.encode(), text.encode(), hashlib.sha256).hexdigest()}
        if self.key_id:
            headers["X-ML-Key-Id"] = self.key_id
        return headers


class Pipeline:
    """A client of the ML-analysis routes that signs every request; answers are the envelope's `data`."""

    def __init__(self, url: str, secret: str, key_id: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.signer = Signer(secret, key_id)
        self.http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout, transport=transport)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        request = self.http.build_request(method, path, content=raw)
        request.headers.update({**self.signer.headers(method, str(request.url), raw), **(headers or {})})
        response = self.http.send(request)
        answer = response.json() if response.content else {}
        if response.status_code >= 400:
            raise ApiError.from_response(response.status_code, answer, method, path)
        return answer.get("data") if isinstance(answer, dict) else answer

    def post(self, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
        return self.request("POST", path, body, headers)

    def patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body)
