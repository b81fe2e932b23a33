"""Bad input is a 4xx naming what was wrong, never a 500 and never a partial write (issue 12, 6–12):
the rules of every body, free-form documents (metadata, attributes), the annotation set's stored
size, names, coordinates, cursors, and memberships changed by PATCH."""
from __future__ import annotations

import json
import re

import pytest

import app  # noqa: F401  (registers every route)
from chalicelib.api.routing import ROUTES
from chalicelib.schemas.documents import MAX_BODY_DEPTH, MAX_DOCUMENT_DEPTH
from chalicelib.services import cursors
from chalicelib.store.annotations import MAX_SET_BYTES
from tests.conftest import put_share_object
from tests.functional.test_annotations import BOX, SCENE, first_job, get, put
from tests.imagefiles import picture

BODY_ROUTES = [spec for spec in ROUTES if spec.body is not None]


def nested(levels: int, leaf=1):
    """A JSON object `levels` deep: {"a": {"a": ... leaf}}."""
    document = leaf
    for _ in range(levels):
        document = {"a": document}
    return document


def registered_image(stack, admin_api) -> str:
    put_share_object(stack, "rules/a.png", picture(seed=7, fmt="PNG"))
    answer = admin_api.post("/api/v1/shared-images/register", {"file_paths": ["rules/a.png"]})
    assert answer.status_code == 200, answer.json
    return answer.json["data"]["registered"][0]["id"]


def patch_metadata(admin_api, image_id: str, raw: bytes):
    return admin_api.request("PATCH", f"/api/v1/shared-images/{image_id}", raw=raw)


def assert_error(answer, status: int, *fragments: str) -> None:
    assert answer.status_code == status, answer.json
    assert set(answer.json) == {"error", "status_code"} and answer.json["status_code"] == status
    text = answer.json["error"]["message"] + json.dumps(answer.json["error"]["details"])
    for fragment in fragments:
        assert fragment in text, (fragment, answer.json)


# 6. Every body: bounded depth --------------------------------------------------------------------

@pytest.mark.parametrize("spec", BODY_ROUTES, ids=lambda spec: f"{spec.method} {spec.path}")
def test_a_body_nested_beyond_the_limit_is_a_400_on_every_route_with_a_body(admin_api, anonymous_api, spec):
    # Given a route with a body, and bodies nested far beyond the limit and just beyond it
    path = re.sub(r"{\w+}", "x", spec.path)
    if spec.pipeline:  # an ML pipeline's route: signed, not a user's (tests/functional/test_analyses.py)
        from tests.functional.test_analyses import Pipeline, enable

        enable(None)
    for raw in (b"[" * 100_000, json.dumps(nested(MAX_BODY_DEPTH + 1)).encode()):
        # When one is sent
        if spec.pipeline:
            answer = anonymous_api.request(spec.method, path, raw=raw,
                                           headers=Pipeline(None).headers(spec.method, path, raw))
        else:
            answer = admin_api.request(spec.method, path, raw=raw)
        # Then it is refused as unreadable, naming the limit
        assert_error(answer, 400, f"deeper than {MAX_BODY_DEPTH} levels")


# 7, 9, 10. Free-form documents -------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "fragments"), [
    (json.dumps({"metadata": nested(MAX_DOCUMENT_DEPTH + 1)}).encode(),
     ["metadata", f"deeper than {MAX_DOCUMENT_DEPTH}"]),
    (b'{"metadata": {"score": {"": 1}}}', ["metadata", "empty key", "score"]),
    (b'{"metadata": {"score": NaN}}', ["metadata.score", "finite"]),
    (b'{"metadata": {"score": Infinity}}', ["metadata.score", "finite"]),
    (b'{"metadata": {"score": -Infinity}}', ["metadata.score", "finite"]),
    (b'{"metadata": {"score": 1e400}}', ["metadata.score", "finite"]),
    (b'{"metadata": {"score": 1e200}}', ["metadata", "magnitude"]),
    (b'{"metadata": {"score": 123456789012345678901234567890123456789}}', ["metadata", "39 significant digits"]),
    (b'{"metadata": {"note": "\\ud800"}}', ["metadata.note", "surrogate"]),
])
def test_metadata_that_cannot_be_stored_is_a_422_naming_the_field_and_nothing_is_written(stack, admin_api, raw,
                                                                                            fragments):
    # Given an image with metadata
    image_id = registered_image(stack, admin_api)
    assert patch_metadata(admin_api, image_id, b'{"metadata": {"kept": 1}}').status_code == 200
    # When metadata DynamoDB cannot hold (or that is no JSON number or string) is sent
    answer = patch_metadata(admin_api, image_id, raw)
    # Then it is a 422 naming the field and the rule
    assert_error(answer, 422, *fragments)
    # And nothing was written: the image reads as before and takes the next change
    assert admin_api.get(f"/api/v1/shared-images/{image_id}").json["data"]["metadata"] == {"kept": 1}
    again = patch_metadata(admin_api, image_id, b'{"metadata": {"score": {"a": 1}}}')
    assert again.status_code == 200, again.json
    assert again.json["data"]["metadata"] == {"kept": 1, "score": {"a": 1}}


def test_metadata_at_the_depth_limit_and_the_largest_numbers_are_stored(stack, admin_api):
    # Given an image
    image_id = registered_image(stack, admin_api)
    # (the metadata object is level 1: `deep` holds the other 31)
    document = {"deep": nested(MAX_DOCUMENT_DEPTH - 1), "big": 10**37, "small": 1.5e-120, "large": 9.9e125}
    # When metadata at every limit is sent
    answer = admin_api.patch(f"/api/v1/shared-images/{image_id}", {"metadata": document})
    # Then it is stored as sent
    assert answer.status_code == 200, answer.json
    assert admin_api.get(f"/api/v1/shared-images/{image_id}").json["data"]["metadata"] == document


@pytest.mark.parametrize(("attributes", "fragments"), [
    (nested(MAX_DOCUMENT_DEPTH + 1), ["annotations.0.attributes", f"deeper than {MAX_DOCUMENT_DEPTH}"]),
    ({"": True}, ["annotations.0.attributes", "empty key"]),
    ({"n": 10**40 + 1}, ["annotations.0.attributes", "significant digits"]),
])
def test_attributes_that_cannot_be_stored_are_a_422_naming_the_field(stack, api, attributes, fragments):
    # Given an image of a job
    _, job_id, (image_id, _), _ = first_job(stack, api)
    # When an annotation's attributes break a rule of free-form documents
    answer = put(api, job_id, image_id, [{**SCENE, "attributes": attributes}])
    # Then the set is refused naming the field, and nothing is saved
    assert_error(answer, 422, *fragments)
    assert get(api, job_id, image_id)["rev"] == 0


def test_non_finite_numbers_in_attributes_are_a_422(stack, api):
    _, job_id, (image_id, _), _ = first_job(stack, api)
    for number in (b"NaN", b"Infinity", b"1e400"):
        raw = b'{"annotations": [{"type": "classification", "label": "indoor", "attributes": {"p": %s}}]}' % number
        answer = api.request("PUT", f"/api/v1/jobs/{job_id}/images/{image_id}/annotations", raw=raw)
        assert_error(answer, 422, "annotations.0.attributes.p", "finite")
    assert get(api, job_id, image_id)["rev"] == 0


# 8. The annotation set's stored size ------------------------------------------------------------

def test_an_annotation_set_larger_than_an_item_can_hold_is_a_413_and_nothing_is_written(stack, api):
    # Given an image of a job with a saved set
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    # When a set within the schema's limits but beyond what one item holds is sent
    big = [{**SCENE, "attributes": {"note": "x" * 200_000}}, {**SCENE, "attributes": {"note": "y" * 200_000}}]
    answer = put(api, job_id, image_id, big)
    # Then it is a 413 naming the limit and the actual size
    assert_error(answer, 413, f"{MAX_SET_BYTES:,}", "bytes")
    size = int(re.search(r"takes ([\d,]+) bytes", answer.json["error"]["message"]).group(1).replace(",", ""))
    assert size > MAX_SET_BYTES
    # And the saved set is untouched
    current = get(api, job_id, image_id)
    assert current["rev"] == 1 and [a["label"] for a in current["annotations"]] == ["cat"]


# 12. Ids, coordinates, names ---------------------------------------------------------------------

def test_duplicate_annotation_ids_in_one_set_are_a_422(stack, api):
    _, job_id, (image_id, _), _ = first_job(stack, api)
    answer = put(api, job_id, image_id, [{**BOX, "id": "same"}, {**SCENE, "id": "same"}])
    assert_error(answer, 422, "annotations", "'same' is used twice")
    assert get(api, job_id, image_id)["rev"] == 0


@pytest.mark.parametrize("bbox", [[True, 5, 50, 40], [10, 5, False, 40], ["10", 5, 50, 40]])
def test_coordinates_are_strictly_numbers(stack, api, bbox):
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert_error(put(api, job_id, image_id, [{**BOX, "bbox": bbox}]), 422, "annotations.0.bbox")
    points = [[0, 0], [True, 0], [100, 100]]
    assert_error(put(api, job_id, image_id, [{"type": "polygon", "label": "outline", "points": points}]), 422,
                 "annotations.0.points")


@pytest.mark.parametrize(("name", "code"), [("cat\x00", "U+0000"), ("\u202egnp.cat", "U+202E"), ("a\u2066b", "U+2066"),
                                           ("line\nbreak", "U+000A"), ("a\x1bb", "U+001B")])
def test_names_with_control_or_bidi_characters_are_a_422(api, name, code):
    assert_error(api.post("/api/v1/tags", {"name": name}), 422, "name", code)
    assert_error(api.post("/api/v1/projects", {"name": name}), 422, "name")
    assert_error(api.post("/api/v1/projects", {"name": "ok", "labels": [{"name": name}]}), 422, "labels.0.name")
    assert api.get("/api/v1/tags").json["data"] == []


def test_plain_names_in_any_script_are_kept(api):
    for name in ("chat noir", "猫", "кот", "قطة", "🐈‍⬛"):
        answer = api.post("/api/v1/tags", {"name": name})
        assert answer.status_code == 201, answer.json
        assert answer.json["data"]["name"] == name


# 12. Memberships: PATCH changes, never adds ------------------------------------------------------

def test_patching_the_role_of_a_non_member_is_a_404_and_adds_nobody(stack, client, api):
    from tests.conftest import Api

    bob = Api(client, stack.token(sub="bob", email="bob@example.com"))
    assert bob.get("/api/v1/me").status_code == 200  # bob exists as a user
    project_id = api.post("/api/v1/projects", {"name": "Team"}).json["data"]["id"]
    # When the owner patches the role of bob, who is not a member
    answer = api.patch(f"/api/v1/projects/{project_id}/members/bob", {"role": "editor"})
    # Then it is a 404 and bob is still not a member
    assert_error(answer, 404, "bob", "not a member")
    members = api.get(f"/api/v1/projects/{project_id}/members").json["data"]
    assert [member["user_id"] for member in members] == ["alice"]
    # And a member's role does change
    assert api.post(f"/api/v1/projects/{project_id}/members", {"user_id": "bob", "role": "viewer"}).status_code == 201
    changed = api.patch(f"/api/v1/projects/{project_id}/members/bob", {"role": "editor"})
    assert changed.status_code == 200 and changed.json["data"]["role"] == "editor"


# 11. Cursors -------------------------------------------------------------------------------------

def test_every_cursor_the_api_accepts_is_checked_by_one_codec(stack, api):
    # Given a project and the share
    project_id = api.post("/api/v1/projects", {"name": "Cursors"}).json["data"]["id"]
    listings = {
        "browse": "/api/v1/share/browse?cursor={}",
        "explore": f"/api/v1/projects/{project_id}/explore?cursor={{}}",
        "activity": f"/api/v1/projects/{project_id}/activity?cursor={{}}",
    }
    for kind, url in listings.items():
        other = "explore" if kind != "explore" else "browse"
        for cursor in ("anything", "%00%01", "e30", cursors.encode(other, "x"), cursors.encode(kind, {"a": 1}),
                       "W10", "IiI"):
            # When a cursor this API did not hand out for this listing is sent
            answer = api.get(url.format(cursor))
            # Then it is a 400 naming the cursor
            assert_error(answer, 400, "cursor")


def test_a_browse_cursor_must_point_into_the_folder_listed(stack, api):
    for n in range(3):
        put_share_object(stack, f"a/{n}.png", b"x")
        put_share_object(stack, f"b/{n}.png", b"x")
    first = api.get("/api/v1/share/browse?path=a&page_size=1")
    cursor = first.json["data"]["next_cursor"]
    assert cursor
    # A cursor of folder a is refused for folder b, a forged position too
    assert_error(api.get(f"/api/v1/share/browse?path=b&cursor={cursor}"), 400, "cursor")
    assert_error(api.get(f"/api/v1/share/browse?path=b&cursor={cursors.encode('browse', 'zzz')}"), 400, "cursor")
    # And it continues the listing it came from
    second = api.get(f"/api/v1/share/browse?path=a&page_size=5&cursor={cursor}")
    assert [entry["path"] for entry in second.json["data"]["entries"]] == ["a/1.png", "a/2.png"]


def test_browse_pages_pass_folders_and_files_once_each(stack, api):
    # Given folders with many files beside files at the same level
    for key in ("f/a/1.png", "f/a/2.png", "f/a/3.png", "f/b.png", "f/c/1.png", "f/c/2.png", "f/d.png"):
        put_share_object(stack, key, b"x")
    seen, cursor = [], None
    while True:
        query = "path=f&page_size=1" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(f"/api/v1/share/browse?{query}").json["data"]
        seen += [entry["path"] for entry in page["entries"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == ["f/a", "f/b.png", "f/c", "f/d.png"] and len(seen) == 4
