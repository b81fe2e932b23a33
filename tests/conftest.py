"""Fixtures for every test.

The embedded stack starts once per process (one per xdist worker: it binds port 0), the first time
a test asks for it, so `pytest tests/unit` never starts it (nothing reads settings at import: store
models bind their tables on first use); every test that uses it starts from empty resources.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, TypeVar

import pytest

if TYPE_CHECKING:
    from infra.local.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent
TESTDATA = ROOT / "tests" / "data"  # copies of ../shared/testdata (public domain / CC0, see its README)

T = TypeVar("T")

_STACK: LocalStack | None = None


def shared_stack() -> LocalStack:
    """This process's embedded stack, started the first time it is asked for."""
    global _STACK
    if _STACK is None:
        from infra.local.stack import LocalStack

        _STACK = LocalStack(retry_delay=0).start()
    return _STACK


def pytest_configure(config):
    # Powertools' Logger and Chalice's app log both bind `sys.stdout` when they are made (and Chalice
    # adds no handler of its own when one already writes there): make them now, before pytest
    # captures output, as a Lambda makes them on its real stdout. Importing the app needs no emulator.
    import app  # noqa: F401


def pytest_unconfigure(config):
    if _STACK is not None:
        _STACK.stop()


@pytest.fixture(scope="session")
def local_stack():
    return shared_stack()


@pytest.fixture
def stack(local_stack):
    local_stack.reset()
    return local_stack


@pytest.fixture
def client(stack):
    from chalice.test import Client

    with Client(stack.app, stage_name="dev", project_dir=str(ROOT)) as test_client:
        yield test_client


class Api:
    """The Chalice test client with a caller's token and JSON bodies."""

    def __init__(self, client, token: str | None) -> None:
        self._client = client
        self.token = token

    def _headers(self, extra: dict | None) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {**headers, **(extra or {})}

    def request(self, method: str, path: str, body=None, headers: dict | None = None, raw: bytes | None = None):
        payload = raw if raw is not None else (json.dumps(body).encode() if body is not None else b"")
        response = self._client.http.request(method, path, headers=self._headers(headers), body=payload)
        response.json = json.loads(response.body) if response.body else None
        return response

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body=None, **kw):
        return self.request("POST", path, body, **kw)

    def patch(self, path, body=None, **kw):
        return self.request("PATCH", path, body, **kw)

    def delete(self, path, **kw):
        return self.request("DELETE", path, **kw)


@pytest.fixture
def api(client, stack):
    return Api(client, stack.token(sub="alice", email="alice@example.com", groups=[]))


@pytest.fixture
def admin_api(client, stack):
    return Api(client, stack.token(sub="root", email="root@example.com", groups=["admin"]))


@pytest.fixture
def anonymous_api(client):
    return Api(client, None)


def put_share_object(stack, key: str, body: bytes) -> None:
    """An object lands in the share bucket (its notification queues; functional tests deliver it or not)."""
    stack.aws("s3").put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key, Body=body)


def poll(read: Callable[[], T], done: Callable[[T], bool], what: str, timeout: float = 60.0,
         interval: float = 0.1) -> T:
    """Call `read` until `done` holds for its answer and return that answer; fail if `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} did not finish in {timeout}s; last seen: {value!r}")
        time.sleep(interval)


def wait_for(api, operation_id: str, timeout: float = 60.0) -> dict:
    """Poll an operation until it is completed or failed."""
    return poll(lambda: api.get(f"/api/v1/operations/{operation_id}").json["data"],
                lambda operation: operation["status"] in ("completed", "failed"),
                f"operation {operation_id}", timeout)
