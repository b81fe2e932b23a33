"""Every operation of the OpenAPI document, fuzzed by schemathesis over real HTTP.

The app is served the way `make run` serves it (Chalice's local server) on this worker's stack,
with a signed-in admin's token. Examples are few and derandomized so the suite stays fast and CI
sees the same requests every run; the checks are the document's promises: no server error,
statuses, content types, headers and bodies as documented, bad input refused.
"""
from __future__ import annotations

import threading

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import app  # noqa: F401  (importing it registers every route the document lists)
from chalicelib.api.openapi import document_dict
from tests.conftest import put_share_object
from tests.imagefiles import picture

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
MAX_EXAMPLES = 10


@pytest.fixture(scope="module")
def served(local_stack):
    """The app over HTTP on a free port, on an emptied stack; stopped after this module."""
    from chalice.local import create_local_server

    local_stack.reset()
    server = create_local_server(local_stack.app, local_stack.chalice_config(), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, name="fuzzed-api", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server.server_address[1]}"
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture(scope="module")
def token(local_stack) -> str:
    return local_stack.token(sub="fuzzer", email="fuzzer@example.com")


@pytest.fixture(scope="module")
def world(local_stack, served, token) -> dict[str, str]:
    """One of each resource, so that generated requests reach past "not found" into the services."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"

    def post(path: str, body: dict) -> dict:
        response = session.post(f"{served}{path}", json=body, timeout=30)
        assert response.status_code in (200, 201), response.text
        return response.json()["data"]

    put_share_object(local_stack, "fuzz/a.png", picture(seed=1, fmt="PNG"))
    put_share_object(local_stack, "fuzz/b.jpg", picture(seed=2))
    images = [image["id"] for image in post("/api/v1/shared-images/register", {"file_paths": ["fuzz/"]})["registered"]]
    tag = post("/api/v1/tags", {"name": "fuzzed"})["id"]
    project = post("/api/v1/projects", {"name": "fuzzed", "labels": [{"name": "cat", "annotation_type": "bbox"}]})["id"]
    base = f"/api/v1/projects/{project}"
    post(f"{base}/images", {"shared_image_ids": images})
    created = post(f"{base}/tasks", {"name": "fuzzed", "shared_image_ids": images, "chunk_size": 1})
    saved = post(f"{base}/saved-filters", {"name": "fuzzed", "filter": {"tag_ids": [tag]}})
    return {"project_id": project, "tag_id": tag, "image_id": images[0], "task_id": created["task"]["id"],
            "job_id": created["jobs"][0]["id"], "filter_id": saved["id"], "user_id": "fuzzer"}


# The document the app serves at /api/v1/openapi.json, built from the routes `app` registers.
# (Loaded eagerly: schemathesis's `from_fixture` reads an attribute pytest 9 no longer has.)
schema = schemathesis.openapi.from_dict(document_dict(), config=schemathesis.Config.from_dict({
    # Chalice's local server (http.server) answers TRACE and QUERY with its own HTML 501 before
    # the app sees them; API Gateway does not forward them either. Every other method is sent.
    "phases": {"coverage": {"unexpected-methods": ["get", "put", "post", "delete", "options", "patch"]}},
}))


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_every_operation_keeps_the_documents_promises(case, served, token, world):
    # Path parameters name the world's resources (a DELETE keeps its generated ones, so the world
    # stays whole for the operations after it).
    if case.method != "DELETE":
        for name in case.path_parameters or {}:
            case.path_parameters[name] = world.get(name, case.path_parameters[name])
    case.call_and_validate(base_url=served, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS)


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/v1/no-such-route"),
    ("DELETE", "/api/v1/me"),
    ("PUT", "/api/v1/tags"),
])
def test_unknown_routes_and_methods_answer_in_the_error_envelope(served, token, method, path):
    # When a route or a method the API does not have is called
    response = requests.request(method, f"{served}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    # Then the answer is a 4xx in the API's error envelope
    assert 400 <= response.status_code < 500
    body = response.json()
    assert set(body) == {"error", "status_code"} and body["status_code"] == response.status_code, body
    assert set(body["error"]) == {"code", "message", "details"}, body
