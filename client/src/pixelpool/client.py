"""The HTTP client: one `httpx.Client`, bearer token, JSON envelope in and out, retries with backoff
on 429 and 5xx, and iterators that follow the API's pages and cursors.

    from pixelpool import Client
    client = Client()                       # PIXELPOOL_URL / PIXELPOOL_TOKEN or `pixelpool login`
    for image in client.images.iter(folder="photos"):
        print(image.file_path, image.status)
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Iterator, TypeVar

import httpx
from pydantic import BaseModel

from pixelpool.config import Settings
from pixelpool.errors import ApiError, TransportError

M = TypeVar("M", bound=BaseModel)

RETRY_STATUSES = {429, 500, 502, 503, 504}
# A POST that failed with a 500 may have had its effect: only statuses that say "not done" are retried.
RETRY_STATUSES_UNSAFE = {429, 502, 503, 504}
SAFE_METHODS = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
PAGE_SIZE = 200


class Client:
    """A typed client of one pixelpool API.

    `retries` extra attempts on 429/5xx and on connection errors, waiting `backoff` × 2^n seconds
    (with jitter, or the server's `Retry-After`); `transport` is handed to httpx (tests inject one).
    """

    def __init__(self, url: str | None = None, token: str | None = None, *, retries: int = 5,
                 backoff: float = 0.25, timeout: float = 60.0, transport: httpx.BaseTransport | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        settings = Settings.resolve(url, token)
        self.url, self.token = settings.url, settings.token
        self.retries, self.backoff, self._sleep = retries, backoff, sleep
        self.http = httpx.Client(base_url=self.url, timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {self.token}", "User-Agent": "pixelpool-sdk"})
        from pixelpool import resources

        self.images = resources.Images(self)
        self.tags = resources.Tags(self)
        self.projects = resources.Projects(self)
        self.tasks = resources.Tasks(self)
        self.exports = resources.Exports(self)
        self.datasets = resources.Datasets(self)
        self.operations = resources.Operations(self)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The one request path --------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                json: Any = None, expect_redirect: bool = False) -> dict[str, Any]:
        """Send one API call and return its envelope (`data`, `meta`, `message`, `status_code`);
        raise `ApiError` with the error envelope, or `TransportError` if the API stays unreachable."""
        method = method.upper()
        retryable = RETRY_STATUSES if method in SAFE_METHODS else RETRY_STATUSES_UNSAFE
        query = _query(params)
        for attempt in range(self.retries + 1):
            try:
                response = self.http.request(method, path, params=query, json=json)
            except httpx.TransportError as exc:
                if attempt == self.retries:
                    raise TransportError(f"{method} {self.url}{path}: {exc.__class__.__name__}: {exc}") from exc
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in retryable and attempt < self.retries:
                self._sleep(self._delay(attempt, response.headers.get("Retry-After")))
                continue
            if expect_redirect and response.status_code in (301, 302, 303, 307):
                return {"location": response.headers["Location"], "status_code": response.status_code}
            body = _body(response)
            if response.status_code >= 400:
                raise ApiError.from_response(response.status_code, body, method, path)
            return body if isinstance(body, dict) else {"data": body}
        raise AssertionError("unreachable")  # the loop returns or raises

    def data(self, method: str, path: str, **kw: Any) -> Any:
        return self.request(method, path, **kw).get("data")

    def get(self, path: str, model: type[M], **params: Any) -> M:
        return model.model_validate(self.data("GET", path, params=params))

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(float(retry_after), 60.0)
            except ValueError:
                pass
        return self.backoff * (2 ** attempt) * (0.5 + random.random())

    # Paging ------------------------------------------------------------------------------------------

    def pages(self, path: str, model: type[M], params: dict[str, Any] | None = None,
              limit: int | None = None) -> Iterator[M]:
        """Every item of a list paged with `page` / `page_size` (`meta.total`), in order."""
        params, page, seen = dict(params or {}), 1, 0
        while True:
            answer = self.request("GET", path, params={**params, "page": page, "page_size": PAGE_SIZE})
            items = answer.get("data") or []
            for item in items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield model.model_validate(item)
            total = (answer.get("meta") or {}).get("total")
            if not items or len(items) < PAGE_SIZE or (total is not None and page * PAGE_SIZE >= total):
                return
            page += 1

    def cursor_pages(self, path: str, model: type[M], params: dict[str, Any] | None = None,
                     items_key: str | None = None, limit: int | None = None,
                     page_size: int = PAGE_SIZE) -> Iterator[M]:
        """Every item of a list that hands out a `next_cursor` (in `meta`, or beside the items in
        `data` when `items_key` names them, as Explore does), following it to the end."""
        params, cursor, seen = dict(params or {}), None, 0
        while True:
            query = {**params, "page_size": page_size, **({"cursor": cursor} if cursor else {})}
            answer = self.request("GET", path, params=query)
            data = answer.get("data")
            items = (data or {}).get(items_key, []) if items_key else (data or [])
            for item in items:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield model.model_validate(item)
            holder = data if items_key else (answer.get("meta") or {})
            cursor = (holder or {}).get("next_cursor")
            if not cursor or not items:
                return


def _query(params: dict[str, Any] | None) -> list[tuple[str, str]] | None:
    """Query pairs without Nones; lists repeat their name (`tag_ids=a&tag_ids=b`); booleans as JSON."""
    if not params:
        return None
    pairs: list[tuple[str, str]] = []
    for name, value in params.items():
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if item is None:
                continue
            pairs.append((name, "true" if item is True else "false" if item is False else str(item)))
    return pairs


def _body(response: httpx.Response) -> Any:
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        return response.text
