"""Saved filters and the project timeline: the round trip of a named filter, invalid filters refused
before anything is saved, a saved filter selecting a task's images exactly as Explore shows them,
and the activity timeline read newest first, page by page, never reaching into another project.
"""
from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import Api
from tests.imagefiles import picture

IMAGES = "/api/v1/shared-images"


def project_with_images(api, stack, count: int = 8) -> tuple[str, list[str], list[str]]:
    """A project whose pool holds `count` real images of growing width, two tags on some of them."""
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    keys = [f"filters/img-{n}.{'png' if n % 2 else 'jpg'}" for n in range(count)]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=picture(20 + 5 * n, 24, seed=n, fmt="PNG" if n % 2 else "JPEG"))
    ids = [image["id"] for image in api.post(f"{IMAGES}/register", {"file_paths": keys}).json["data"]["registered"]]
    project = api.post("/api/v1/projects", {"name": "filters"}).json["data"]["id"]
    api.post(f"/api/v1/projects/{project}/images", {"shared_image_ids": ids})
    tags = [api.post("/api/v1/tags", {"name": name}).json["data"]["id"] for name in ("red", "blue")]
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": ids[::2], "tag_ids": [tags[0]]})
    api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": ids[:4], "tag_ids": [tags[1]]})
    return project, ids, tags


def saved(api, project: str) -> list[dict]:
    return api.get(f"/api/v1/projects/{project}/saved-filters").json["data"]


def timeline(api, project: str, **query) -> list[dict]:
    return api.get(f"/api/v1/projects/{project}/activity?{urlencode({'page_size': 200, **query})}").json["data"]


def test_saved_filter_round_trip(api):
    # Given a project
    project = api.post("/api/v1/projects", {"name": "p"}).json["data"]["id"]
    base = f"/api/v1/projects/{project}/saved-filters"
    # When two filters are saved
    first = api.post(base, {"name": "wide", "filter": {"min_width": 40, "tag_mode": "any"}})
    second = api.post(base, {"name": "pngs", "filter": {"search": " .png "}})
    # Then each comes back with its normalized filter (defaults dropped, whitespace trimmed) and its author
    assert (first.status_code, second.status_code) == (201, 201)
    wide = first.json["data"]
    assert (wide["name"], wide["filter"], wide["created_by"]) == ("wide", {"min_width": 40}, "alice")
    assert second.json["data"]["filter"] == {"search": ".png"}
    # And the list is newest first, and one can be read back
    assert [item["name"] for item in saved(api, project)] == ["pngs", "wide"]
    assert api.get(f"{base}/{wide['id']}").json["data"] == wide
    # When it is renamed, then its filter replaced
    renamed = api.request("PUT", f"{base}/{wide['id']}", {"name": "very wide"}).json["data"]
    replaced = api.request("PUT", f"{base}/{wide['id']}", {"filter": {"max_height": 30}}).json["data"]
    # Then each change keeps the rest and moves updated_at only
    assert (renamed["name"], renamed["filter"]) == ("very wide", {"min_width": 40})
    assert (replaced["name"], replaced["filter"]) == ("very wide", {"max_height": 30})
    assert replaced["created_at"] == wide["created_at"] and replaced["updated_at"] > wide["updated_at"]
    assert api.get(f"{base}/{wide['id']}").json["data"] == replaced
    # When it is deleted
    deleted = api.delete(f"{base}/{wide['id']}")
    # Then it is gone, and the other stays
    assert deleted.status_code == 200
    assert api.get(f"{base}/{wide['id']}").status_code == 404
    assert api.request("PUT", f"{base}/{wide['id']}", {"name": "x"}).status_code == 404
    assert [item["name"] for item in saved(api, project)] == ["pngs"]


@pytest.mark.parametrize("bad", [{"colour": "red"}, {"min_width": 50, "max_width": 10}, {"tag_mode": "some"},
                                 {"path_prefix": "../x"}])
def test_an_invalid_filter_is_refused_and_nothing_is_saved(api, bad):
    # Given a project with one saved filter
    project = api.post("/api/v1/projects", {"name": "p"}).json["data"]["id"]
    base = f"/api/v1/projects/{project}/saved-filters"
    good = api.post(base, {"name": "good", "filter": {}}).json["data"]
    # When an invalid filter object is saved, or put over the good one
    created = api.post(base, {"name": "bad", "filter": bad})
    replaced = api.request("PUT", f"{base}/{good['id']}", {"name": "bad", "filter": bad})
    # Then both are refused with 422 pointing into the filter, and nothing changed
    for response in (created, replaced):
        assert response.status_code == 422, response.json
        assert all(detail["field"].startswith("filter") for detail in response.json["error"]["details"])
    assert saved(api, project) == [good]
    assert [entry["action"] for entry in timeline(api, project) if entry["entity_type"] == "filter"] == ["saved"]


def test_a_task_from_a_saved_filter_takes_exactly_what_explore_shows(api, stack):
    # Given a pool, and a saved filter over tags, width and format
    project, ids, tags = project_with_images(api, stack)
    condition = {"tag_ids": tags, "tag_mode": "any", "exclude_tag_ids": [tags[1]], "min_width": 25, "search": "IMG"}
    filter_id = api.post(f"/api/v1/projects/{project}/saved-filters",
                         {"name": "red only", "filter": condition}).json["data"]["id"]
    query = urlencode({**condition, "tag_ids": ",".join(tags), "exclude_tag_ids": tags[1], "page_size": 200})
    shown = [image["id"] for image in api.get(f"/api/v1/projects/{project}/explore?{query}").json["data"]["images"]]
    # When a task is created from the saved filter in one job
    created = api.post(f"/api/v1/projects/{project}/tasks", {"name": "t", "chunk_size": 100,
                                                             "saved_filter_id": filter_id})
    # Then it holds exactly the images Explore shows for that filter, in that order
    assert created.status_code == 201, created.json
    assert created.json["data"]["task"]["source"] == "filter"
    [job] = created.json["data"]["jobs"]
    in_job = [image["image_id"] for image in api.get(f"/api/v1/jobs/{job['id']}").json["data"]["images"]]
    assert shown and in_job == shown
    assert set(shown) == {image for n, image in enumerate(ids) if n % 2 == 0 and n >= 4}
    # And an unknown saved filter id is 404
    unknown = api.post(f"/api/v1/projects/{project}/tasks", {"name": "t", "saved_filter_id": "no-such-filter"})
    assert unknown.status_code == 404


def test_timeline_shows_saved_filters_newest_first_with_summary_and_actor(api):
    # Given a project in which three filters are saved one after the other
    project = api.post("/api/v1/projects", {"name": "p"}).json["data"]["id"]
    for name in ("first", "second", "third"):
        api.post(f"/api/v1/projects/{project}/saved-filters", {"name": name, "filter": {"search": name}})
    # When the timeline is read
    entries = timeline(api, project)
    # Then the saves are there, newest first, with who did it and what
    saves = [entry for entry in entries if (entry["entity_type"], entry["action"]) == ("filter", "saved")]
    assert [entry["summary"] for entry in saves] == ['Saved filter "third"', 'Saved filter "second"',
                                                    'Saved filter "first"']
    assert {entry["actor"] for entry in saves} == {"alice"}
    assert saves[0]["details"] == {"filter": {"search": "third"}}
    # And the whole timeline is newest first, ending with the project's creation
    assert [entry["created_at"] for entry in entries] == sorted((entry["created_at"] for entry in entries),
                                                               reverse=True)
    assert (entries[-1]["entity_type"], entries[-1]["action"]) == ("project", "created")


def test_timeline_pages_walk_every_entry_once(api):
    # Given a project with seven timeline entries
    project = api.post("/api/v1/projects", {"name": "p"}).json["data"]["id"]
    for n in range(6):
        api.post(f"/api/v1/projects/{project}/saved-filters", {"name": f"f{n}", "filter": {}})
    everything = [entry["id"] for entry in timeline(api, project)]
    assert len(everything) == 7
    # When it is read two at a time following meta.next_cursor
    walked, cursor = [], None
    while True:
        response = api.get(f"/api/v1/projects/{project}/activity?"
                           + urlencode({"page_size": 2, **({"cursor": cursor} if cursor else {})}))
        assert len(response.json["data"]) <= 2 and response.json["meta"]["page_size"] == 2
        walked += [entry["id"] for entry in response.json["data"]]
        cursor = response.json["meta"]["next_cursor"]
        if cursor is None:
            break
    # Then every entry is seen once, in the same order as in one read
    assert walked == everything


@pytest.fixture
def two_timelines(api, client, stack):
    """Alice's project, and Bob's project that Alice is not in, each with a few entries."""
    bob = Api(client, stack.token(sub="bob", email="bob@example.com", groups=[]))
    mine = api.post("/api/v1/projects", {"name": "mine"}).json["data"]["id"]
    theirs = bob.post("/api/v1/projects", {"name": "theirs"}).json["data"]["id"]
    for n in range(3):
        api.post(f"/api/v1/projects/{mine}/saved-filters", {"name": f"mine-{n}", "filter": {}})
        bob.post(f"/api/v1/projects/{theirs}/saved-filters", {"name": f"theirs-{n}", "filter": {}})
    first_page = bob.get(f"/api/v1/projects/{theirs}/activity?page_size=1").json["meta"]["next_cursor"]
    return mine, {entry["id"] for entry in timeline(bob, theirs)}, first_page


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.text(min_size=1, max_size=60) | st.sampled_from(["~", "9999", "0000", "2100-01-01T00:00:00+00:00#z"]))
def test_a_tampered_cursor_never_shows_another_projects_entries(api, two_timelines, raw):
    # Given my project and the ids of entries in someone else's
    mine, theirs, their_cursor = two_timelines
    # When my timeline is read with their cursor, or one I made up
    for cursor in (their_cursor, _cursor(raw)):
        response = api.get(f"/api/v1/projects/{mine}/activity?{urlencode({'cursor': cursor})}")
        # Then it answers from my timeline only, or refuses the cursor
        assert response.status_code in (200, 400), response.json
        if response.status_code == 200:
            assert not {entry["id"] for entry in response.json["data"]} & theirs
            assert all(entry["summary"].startswith(('Saved filter "mine', "Created project \"mine"))
                       for entry in response.json["data"])
