"""The SDK's HTTP client against a fake API (httpx.MockTransport): retries, the error envelope,
pages and cursors."""
from __future__ import annotations

import json

import httpx
import pytest

from pixelpool import ApiError, Client, TransportError


def client_for(handler, **kw) -> tuple[Client, list[float]]:
    slept: list[float] = []
    return Client("http://api.test", "T", transport=httpx.MockTransport(handler), sleep=slept.append, **kw), slept


def envelope(data, status=200, **extra):
    return httpx.Response(status, json={"data": data, "message": "ok", "status_code": status, **extra})


def test_429_and_503_are_retried_with_backoff_and_retry_after():
    # Given an API that is throttled, then unavailable, then answers
    answers = iter([httpx.Response(429, headers={"Retry-After": "2"}, json={}), httpx.Response(503, json={}),
                    envelope({"sub": "alice"})])
    seen = []

    def handler(request):
        seen.append(request.headers["Authorization"])
        return next(answers)

    client, slept = client_for(handler)
    # When the client asks once
    # Then it gets the answer after two waits: the server's Retry-After, then its own backoff
    assert client.data("GET", "/api/v1/me") == {"sub": "alice"}
    assert seen == ["Bearer T"] * 3
    assert slept[0] == 2.0 and 0 < slept[1] <= 0.25 * 2 * 1.5


def test_a_post_answered_500_is_not_sent_again():
    calls = []

    def handler(request):
        calls.append(request.method)
        return httpx.Response(500, json={"error": {"code": "internal_error", "message": "boom", "details": []},
                                         "status_code": 500})

    client, _ = client_for(handler)
    with pytest.raises(ApiError) as raised:
        client.data("POST", "/api/v1/tags", json={"name": "x"})
    assert calls == ["POST"] and raised.value.status == 500


def test_an_error_envelope_becomes_one_line_naming_each_field():
    def handler(request):
        return httpx.Response(422, json={"error": {"code": "validation_error", "message": "Invalid query", "details": [
            {"field": "min_width", "location": "query", "message": "Input should be >= 0", "type": "x"}]},
            "status_code": 422})

    client, _ = client_for(handler)
    with pytest.raises(ApiError) as raised:
        client.data("GET", "/api/v1/projects/p/explore", params={"min_width": -1})
    error = raised.value
    assert (error.status, error.code, error.fields) == (422, "validation_error", ["min_width"])
    assert str(error) == "422 validation_error: Invalid query [min_width: Input should be >= 0]"
    assert "\n" not in str(error)


def test_an_unreachable_api_is_a_transport_error_after_every_retry():
    def handler(request):
        raise httpx.ConnectError("refused", request=request)

    client, slept = client_for(handler, retries=2)
    with pytest.raises(TransportError, match="ConnectError"):
        client.data("GET", "/health")
    assert len(slept) == 2


def test_pages_are_followed_until_the_total():
    # Given 450 registry images served 200 a page
    def handler(request):
        page, size = int(request.url.params["page"]), int(request.url.params["page_size"])
        items = [{"id": str(n), "file_path": f"p/{n}.jpg", "filename": f"{n}.jpg", "folder": "p", "status": "ready"}
                 for n in range((page - 1) * size, min(page * size, 450))]
        return envelope(items, meta={"total": 450, "page": page, "page_size": size})

    client, _ = client_for(handler)
    # Then iterating yields all of them, in order, and a limit stops early
    assert [image.id for image in client.images.iter(folder="p")] == [str(n) for n in range(450)]
    assert len(list(client.images.iter(limit=5))) == 5


def test_cursors_are_followed_in_meta_and_beside_the_items():
    def activity(request):
        cursor = request.url.params.get("cursor")
        entry = {"id": cursor or "first", "entity_type": "task", "entity_id": "t", "action": "created",
                 "created_at": "2026-01-01T00:00:00Z"}
        return envelope([entry], meta={"page_size": 100, "next_cursor": None if cursor else "second"})

    def explore(request):
        cursor = request.url.params.get("cursor")
        assert json.loads(json.dumps(request.url.params.get_list("tag_ids"))) == ["a", "b"]
        image = {"id": cursor or "one", "file_path": "x.jpg", "filename": "x.jpg", "status": "ready"}
        return envelope({"images": [image], "total": 2, "page": 1, "page_size": 200,
                         "next_cursor": None if cursor else "two", "filters_applied": {}})

    client, _ = client_for(lambda r: explore(r) if r.url.path.endswith("/explore") else activity(r))
    assert [e.id for e in client.projects.activity("p")] == ["first", "second"]
    assert [i.id for i in client.projects.explore("p", {"tag_ids": ["a", "b"]})] == ["one", "two"]


def test_the_sdk_and_cli_import_nothing_of_the_server():
    import subprocess
    import sys

    code = ("import sys, pixelpool, pixelpool.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('chalice', 'chalicelib', 'boto3', 'app')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_an_image_is_found_by_its_share_path_in_its_folder():
    # Given a registry folder with `cat.jpg` and `cat.jpg.bak` (both match a name search)
    def record(image_id, path):
        return {"id": image_id, "file_path": path, "filename": path.rsplit("/", 1)[-1], "folder": "photos",
                "status": "ready"}

    asked = []

    def handler(request):
        asked.append(dict(request.url.params))
        return envelope([record("i-bak", "photos/cat.jpg.bak"), record("i-cat", "photos/cat.jpg")],
                        meta={"total": 2})

    client, _ = client_for(handler)
    # Then a path is looked up in its folder, and only the exact path is taken; an id is used as is
    assert client.images.resolve("photos/cat.jpg") == "i-cat"
    assert asked[0]["folder"] == "photos" and asked[0]["search"] == "cat.jpg"
    assert client.images.resolve("i-cat") == "i-cat" and len(asked) == 1
    with pytest.raises(ValueError, match="no registered image at 'photos/dog.jpg'"):
        client.images.resolve("photos/dog.jpg")
