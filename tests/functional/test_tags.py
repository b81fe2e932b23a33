"""Tags: the first vertical slice, through the Chalice gateway with real tokens and the emulator."""
from __future__ import annotations

import threading

from chalicelib.store.tags import TagRepository


def test_create_returns_tag_with_defaults(api):
    # When
    response = api.post("/api/v1/tags", {"name": "  outdoor ", "description": "Outdoor scenes"})
    # Then
    assert response.status_code == 201
    tag = response.json["data"]
    assert tag["name"] == "outdoor"
    assert tag["color"] == "#6B7280"
    assert tag["created_by"] == "alice"
    assert response.json["status_code"] == 201
    assert api.get(f"/api/v1/tags/{tag['id']}").json["data"]["name"] == "outdoor"


def test_duplicate_name_in_any_case_is_409(api):
    assert api.post("/api/v1/tags", {"name": "Cat"}).status_code == 201
    response = api.post("/api/v1/tags", {"name": "cAT"})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "conflict"
    assert "cAT" in response.json["error"]["message"]


def test_concurrent_creates_of_one_name_let_exactly_one_win(api, client, stack):
    # Given eight callers racing for the same name in different cases
    results: list[int] = []
    names = ["dog", "Dog", "DOG", "dOg", "doG", "DoG", "dOG", "DOg"]

    def create(name):
        results.append(api.post("/api/v1/tags", {"name": name}).status_code)

    threads = [threading.Thread(target=create, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then
    assert sorted(results) == [201] + [409] * 7
    assert [t["name"].lower() for t in api.get("/api/v1/tags").json["data"]] == ["dog"]


def test_bad_color_is_422_naming_the_field(api):
    response = api.post("/api/v1/tags", {"name": "sky", "color": "blue"})
    assert response.status_code == 422
    fields = [detail["field"] for detail in response.json["error"]["details"]]
    assert fields == ["color"]
    assert "color" in response.json["error"]["message"]


def test_unknown_field_is_422(api):
    response = api.post("/api/v1/tags", {"name": "sky", "colour": "#000000"})
    assert response.status_code == 422
    assert response.json["error"]["details"][0]["field"] == "colour"
    assert response.json["error"]["details"][0]["type"] == "extra_forbidden"


def test_name_and_description_limits(api):
    assert api.post("/api/v1/tags", {"name": ""}).status_code == 422
    assert api.post("/api/v1/tags", {"name": "x" * 101}).status_code == 422
    assert api.post("/api/v1/tags", {"name": "x" * 100}).status_code == 201
    assert api.post("/api/v1/tags", {"name": "y", "description": "d" * 501}).status_code == 422


def test_no_token_is_401_and_nothing_is_written(anonymous_api, api):
    response = anonymous_api.post("/api/v1/tags", {"name": "sneaky"})
    assert response.status_code == 401
    assert response.json["error"]["code"] == "unauthorized"
    assert api.get("/api/v1/tags").json["data"] == []


def test_list_search_and_usage_count(api):
    for name in ("Cat", "catfish", "dog"):
        api.post("/api/v1/tags", {"name": name})
    found = api.get("/api/v1/tags?search=CAT").json
    assert [t["name"] for t in found["data"]] == ["Cat", "catfish"]
    assert found["message"] == "Found 2 tag(s)"
    assert found["data"][0]["usage_count"] is None
    with_usage = api.get("/api/v1/tags?search=dog&include_usage_count=true").json["data"]
    assert with_usage[0]["usage_count"] == 0


def test_list_paginates(api):
    for i in range(5):
        api.post("/api/v1/tags", {"name": f"t{i}"})
    page = api.get("/api/v1/tags?page=2&page_size=2").json
    assert [t["name"] for t in page["data"]] == ["t2", "t3"]
    assert page["meta"] == {"total": 5, "page": 2, "page_size": 2}
    assert api.get("/api/v1/tags?page_size=201").status_code == 422


def test_patch_renames_and_frees_the_old_name(api):
    tag = api.post("/api/v1/tags", {"name": "kitty"}).json["data"]
    other = api.post("/api/v1/tags", {"name": "puppy"}).json["data"]
    # When renamed
    renamed = api.patch(f"/api/v1/tags/{tag['id']}", {"name": "Kitten", "color": "#ff0000"})
    # Then
    assert renamed.status_code == 200
    assert renamed.json["data"]["name"] == "Kitten"
    assert renamed.json["data"]["color"] == "#FF0000"
    assert api.post("/api/v1/tags", {"name": "kitty"}).status_code == 201
    assert api.patch(f"/api/v1/tags/{other['id']}", {"name": "KITTEN"}).status_code == 409
    assert api.get(f"/api/v1/tags/{other['id']}").json["data"]["name"] == "puppy"


def test_patch_case_only_rename_keeps_the_guard(api):
    tag = api.post("/api/v1/tags", {"name": "bird"}).json["data"]
    assert api.patch(f"/api/v1/tags/{tag['id']}", {"name": "Bird"}).status_code == 200
    assert api.post("/api/v1/tags", {"name": "BIRD"}).status_code == 409


def test_patch_rejects_null_name(api):
    tag = api.post("/api/v1/tags", {"name": "fish", "description": "wet"}).json["data"]
    assert api.patch(f"/api/v1/tags/{tag['id']}", {"name": None}).status_code == 422
    cleared = api.patch(f"/api/v1/tags/{tag['id']}", {"description": None}).json["data"]
    assert cleared["description"] is None and cleared["name"] == "fish"


def test_unknown_tag_is_404(api):
    assert api.get("/api/v1/tags/nope").status_code == 404
    assert api.patch("/api/v1/tags/nope", {"color": "#000000"}).status_code == 404
    assert api.delete("/api/v1/tags/nope").status_code == 404


def test_delete_in_use_is_409_unless_forced(api, admin_api):
    tag = api.post("/api/v1/tags", {"name": "busy"}).json["data"]
    TagRepository().adjust_usage(tag["id"], 3)
    refused = api.delete(f"/api/v1/tags/{tag['id']}")
    assert refused.status_code == 409
    assert "3 image(s)" in refused.json["error"]["message"]
    assert api.get(f"/api/v1/tags/{tag['id']}").json["data"]["usage_count"] == 3
    # forcing strips the tag from every image: an admin's action, even for the tag's creator
    assert api.delete(f"/api/v1/tags/{tag['id']}?force=true").status_code == 403
    assert admin_api.delete(f"/api/v1/tags/{tag['id']}?force=true").status_code == 200
    assert api.get(f"/api/v1/tags/{tag['id']}").status_code == 404
    assert api.post("/api/v1/tags", {"name": "busy"}).status_code == 201


def test_usage_counter_is_exact_under_concurrency(api):
    tag = api.post("/api/v1/tags", {"name": "counted"}).json["data"]
    repository = TagRepository()
    threads = [threading.Thread(target=repository.adjust_usage, args=(tag["id"], 1)) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert repository.get(tag["id"]).usage_count == 20


def test_mutations_are_recorded_in_the_activity_log(api):
    from chalicelib.services.container import services

    tag = api.post("/api/v1/tags", {"name": "logged"}).json["data"]
    api.patch(f"/api/v1/tags/{tag['id']}", {"color": "#000000"})
    api.delete(f"/api/v1/tags/{tag['id']}")
    entries, _ = services().activity.newest(None, limit=10)
    assert [(e.entity_type, e.entity_id, e.action, e.actor) for e in entries] == [
        ("tag", tag["id"], "deleted", "alice"),
        ("tag", tag["id"], "updated", "alice"),
        ("tag", tag["id"], "created", "alice"),
    ]
    assert entries[1].details == {"fields": ["color"]}


def test_usage_of_a_missing_tag_is_not_found(stack):
    import pytest

    from chalicelib.errors import NotFoundError

    with pytest.raises(NotFoundError):
        TagRepository().adjust_usage("missing", 1)
