"""Projects through the API: creation with a label set, listing by membership, changes and deletion
(tasks and jobs go, registry images stay), members and the last-owner rule, the project pool, and
the activity timeline."""
from __future__ import annotations

import pytest

from tests import imagefiles
from tests.conftest import Api

PROJECTS = "/api/v1/projects"
LABELS = [
    {"name": "cat", "color": "#FF0000", "annotation_type": "bbox"},
    {"name": "dog", "color": "#00ff00", "annotation_type": "polygon"},
    {"name": "indoor", "color": "#0000FF", "annotation_type": "classification"},
]


def user(client, stack, sub: str) -> Api:
    """A user who has made one call, so the API knows them."""
    caller = Api(client, stack.token(sub=sub, email=f"{sub}@example.com", groups=[]))
    assert caller.get(PROJECTS).status_code == 200
    return caller


def create_project(api, name: str = "Cats", labels=None) -> dict:
    response = api.post(PROJECTS, {"name": name, "description": "d", "labels": labels or []})
    assert response.status_code == 201, response.json
    return response.json["data"]


def register(stack, api, *keys: str) -> list[str]:
    """Put a distinct picture at each key and register them; their registry ids in the given order."""
    bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    for seed, key in enumerate(keys):
        stack.aws("s3").put_object(Bucket=bucket, Key=key, Body=imagefiles.picture(48, 32, seed=seed))
    response = api.post("/api/v1/shared-images/register", {"file_paths": list(keys)})
    assert response.status_code == 200, response.json
    by_path = {image["file_path"]: image["id"] for image in response.json["data"]["registered"]}
    return [by_path[key] for key in keys]


def explored(api, project_id: str) -> list[dict]:
    response = api.get(f"{PROJECTS}/{project_id}/explore?page_size=200")
    assert response.status_code == 200, response.json
    return response.json["data"]["images"]


def activity(api, project_id: str) -> list[dict]:
    response = api.get(f"{PROJECTS}/{project_id}/activity?page_size=200")
    assert response.status_code == 200, response.json
    return response.json["data"]


# Projects ----------------------------------------------------------------------------------------


def test_create_project_makes_the_creator_owner_and_keeps_the_label_set(api):
    # When
    response = api.post(PROJECTS, {"name": "Pets", "description": "cats and dogs", "labels": LABELS})
    # Then
    assert response.status_code == 201, response.json
    project = response.json["data"]
    assert (project["name"], project["description"], project["role"], project["created_by"]) == (
        "Pets", "cats and dogs", "owner", "alice")
    assert project["labels"] == LABELS
    assert response.json["message"] == "Project 'Pets' created"
    members = api.get(f"{PROJECTS}/{project['id']}/members").json["data"]
    assert [(m["user_id"], m["role"]) for m in members] == [("alice", "owner")]
    again = api.get(f"{PROJECTS}/{project['id']}").json["data"]
    assert again["labels"] == LABELS and again["role"] == "owner"


def test_label_defaults_apply_when_only_a_name_is_given(api):
    project = create_project(api, labels=[{"name": "car"}])
    assert project["labels"] == [{"name": "car", "color": "#3B82F6", "annotation_type": "any"}]


@pytest.mark.parametrize("body, field", [
    ({"name": "P", "labels": [{"name": "Cat"}, {"name": "cAT"}]}, "labels"),
    ({"name": "P", "labels": [{"name": "cat", "color": "red"}]}, "color"),
    ({"name": "P", "labels": [{"name": "cat", "color": "#12345G"}]}, "color"),
    ({"name": "P", "labels": [{"name": "cat", "annotation_type": "mask"}]}, "annotation_type"),
    ({"name": "P", "owner": "mallory"}, "owner"),
    ({"name": ""}, "name"),
])
def test_invalid_project_bodies_are_422_and_create_nothing(api, body, field):
    # When
    response = api.post(PROJECTS, body)
    # Then
    assert response.status_code == 422, response.json
    error = response.json["error"]
    assert field in error["message"] or any(field in str(detail) for detail in error["details"])
    assert api.get(PROJECTS).json["data"] == []


def test_a_user_lists_only_their_projects_with_their_role_and_admins_list_all(client, stack, api, admin_api):
    # Given alice owns two projects, bob owns one and is an annotator in one of alice's
    bob = user(client, stack, "bob")
    first = create_project(api, "first")
    second = create_project(api, "second")
    bobs = create_project(bob, "bob's")
    assert api.post(f"{PROJECTS}/{first['id']}/members", {"user_id": "bob", "role": "annotator"}).status_code == 201
    # When / Then: newest first, each with the caller's role
    assert [(p["name"], p["role"]) for p in api.get(PROJECTS).json["data"]] == [("second", "owner"), ("first", "owner")]
    assert [(p["name"], p["role"]) for p in bob.get(PROJECTS).json["data"]] == [("bob's", "owner"),
                                                                                ("first", "annotator")]
    listed = admin_api.get(PROJECTS)
    assert [p["id"] for p in listed.json["data"]] == [bobs["id"], second["id"], first["id"]]
    assert listed.json["message"] == "Found 3 project(s)"
    # And a project one is not a member of does not exist for them
    assert bob.get(f"{PROJECTS}/{second['id']}").status_code == 404


def test_patch_changes_name_and_replaces_labels(api):
    # Given
    project = create_project(api, "Old", labels=LABELS)
    # When
    bird = {"name": "bird", "color": "#123456", "annotation_type": "bbox"}
    response = api.patch(f"{PROJECTS}/{project['id']}", {"name": "New", "labels": [bird]})
    # Then
    assert response.status_code == 200, response.json
    stored = api.get(f"{PROJECTS}/{project['id']}").json["data"]
    assert (stored["name"], stored["description"], stored["labels"]) == ("New", "d", [bird])
    assert stored["updated_at"] > project["updated_at"]
    # And duplicate labels are refused on change too, leaving the project as it was
    bad = api.patch(f"{PROJECTS}/{project['id']}", {"labels": [{**bird, "name": "Bird"}, bird]})
    assert bad.status_code == 422
    assert api.get(f"{PROJECTS}/{project['id']}").json["data"]["labels"] == [bird]


def test_patched_labels_get_the_same_defaults_as_created_ones(api):
    # Given
    project = create_project(api, labels=LABELS)
    # When a label is given by name only
    response = api.patch(f"{PROJECTS}/{project['id']}", {"labels": [{"name": "bird"}]})
    # Then it is stored with the default colour and type, as on creation
    assert response.status_code == 200, response.json
    expected = [{"name": "bird", "color": "#3B82F6", "annotation_type": "any"}]
    assert response.json["data"]["labels"] == expected
    assert api.get(f"{PROJECTS}/{project['id']}").json["data"]["labels"] == expected


def test_deleting_a_project_removes_tasks_and_jobs_but_keeps_registry_images(stack, api):
    # Given a project with a task over two registry images
    project = create_project(api)
    ids = register(stack, api, "del/a.jpg", "del/b.jpg")
    task = api.post(f"{PROJECTS}/{project['id']}/tasks/create-with-file-paths",
                    {"name": "T", "chunk_size": 1, "file_paths": ["del/"]})
    assert task.status_code == 201, task.json
    job_ids = [job["id"] for job in task.json["data"]["jobs"]]
    # When
    response = api.delete(f"{PROJECTS}/{project['id']}")
    # Then
    assert response.status_code == 200, response.json
    assert api.get(f"{PROJECTS}/{project['id']}").status_code == 404
    assert api.get(PROJECTS).json["data"] == []
    for job_id in job_ids:
        assert api.get(f"/api/v1/jobs/{job_id}").status_code == 404
    for image_id in ids:
        assert api.get(f"/api/v1/shared-images/{image_id}").status_code == 200


# Members -----------------------------------------------------------------------------------------


def test_members_are_added_changed_and_listed_by_role(client, stack, api):
    # Given a project and known users
    project = create_project(api)
    members = f"{PROJECTS}/{project['id']}/members"
    for sub in ("bob", "carol", "dave"):
        user(client, stack, sub)
    # When a user the API has not seen is added, they are invited (issue 12 #17: this was a 404)
    unknown = api.post(members, {"user_id": "ghost", "role": "editor"})
    # Then, and the invitation can be revoked
    assert unknown.status_code == 201 and unknown.json["data"]["status"] == "invited"
    assert api.delete(f"{members}/ghost").json["data"]["status"] == "invited"
    # When known users are added, once and then again with the same role
    assert api.post(members, {"user_id": "dave", "role": "viewer"}).status_code == 201
    assert api.post(members, {"user_id": "bob", "role": "annotator"}).status_code == 201
    added = api.post(members, {"user_id": "carol", "role": "editor"})
    again = api.post(members, {"user_id": "carol", "role": "editor"})
    # Then
    assert added.status_code == 201 and added.json["data"]["added_by"] == "alice"
    assert again.status_code == 200 and again.json["data"]["role"] == "editor"
    # When a role changes (PATCH, or POST with another role)
    assert api.patch(f"{members}/bob", {"role": "editor"}).json["data"]["role"] == "editor"
    assert api.post(members, {"user_id": "dave", "role": "annotator"}).status_code == 200
    # Then the list is sorted by role (owner, editor, annotator, viewer), then user
    listed = api.get(members).json["data"]
    assert [(m["user_id"], m["role"]) for m in listed] == [
        ("alice", "owner"), ("bob", "editor"), ("carol", "editor"), ("dave", "annotator")]
    assert api.patch(f"{members}/bob", {"role": "boss"}).status_code == 422
    assert api.patch(f"{members}/nobody", {"role": "viewer"}).status_code == 404


def test_the_last_owner_can_neither_step_down_nor_be_removed(client, stack, api):
    # Given alice is the only owner, bob an editor
    project = create_project(api)
    members = f"{PROJECTS}/{project['id']}/members"
    user(client, stack, "bob")
    api.post(members, {"user_id": "bob", "role": "editor"})
    # When / Then
    assert api.patch(f"{members}/alice", {"role": "editor"}).status_code == 409
    assert api.post(members, {"user_id": "alice", "role": "viewer"}).status_code == 409
    assert api.delete(f"{members}/alice").status_code == 409
    assert ("alice", "owner") in [(m["user_id"], m["role"]) for m in api.get(members).json["data"]]
    # And once bob is an owner too, alice may step down
    assert api.patch(f"{members}/bob", {"role": "owner"}).status_code == 200
    assert api.patch(f"{members}/alice", {"role": "viewer"}).json["data"]["role"] == "viewer"


def test_a_member_can_leave_but_not_remove_others(client, stack, api):
    # Given bob and carol are annotators
    project = create_project(api)
    members = f"{PROJECTS}/{project['id']}/members"
    bob, _ = user(client, stack, "bob"), user(client, stack, "carol")
    for sub in ("bob", "carol"):
        api.post(members, {"user_id": sub, "role": "annotator"})
    # When / Then: bob cannot remove carol, but can leave
    assert bob.delete(f"{members}/carol").status_code == 403
    left = bob.delete(f"{members}/bob")
    assert left.status_code == 200, left.json
    assert left.json["data"]["user_id"] == "bob"
    assert bob.get(f"{PROJECTS}/{project['id']}").status_code == 404
    assert [m["user_id"] for m in api.get(members).json["data"]] == ["alice", "carol"]
    # And the owner removes carol
    assert api.delete(f"{members}/carol").status_code == 200
    assert api.delete(f"{members}/carol").status_code == 404


# Pool and activity -------------------------------------------------------------------------------


def test_adding_images_to_the_pool_reports_each_id_and_is_idempotent(stack, api):
    # Given one image already in the pool
    project = create_project(api)
    pool = f"{PROJECTS}/{project['id']}/images"
    a, b, c = register(stack, api, "pool/a.jpg", "pool/b.jpg", "pool/c.jpg")
    assert api.post(pool, {"shared_image_ids": [a]}).json["data"]["added"] == [a]
    # When
    response = api.post(pool, {"shared_image_ids": [a, b, "no-such-image", c, b]})
    # Then
    assert response.status_code == 200, response.json
    assert response.json["data"] == {"added": [b, c], "already_in_pool": [a], "unknown": ["no-such-image"],
                                     "not_ready": [], "total_added": 2, "total_already_in_pool": 1,
                                     "total_unknown": 1, "total_not_ready": 0}
    # And the same request again adds nothing
    again = api.post(pool, {"shared_image_ids": [a, b, "no-such-image", c]}).json["data"]
    assert (again["added"], again["already_in_pool"], again["unknown"]) == ([], [a, b, c], ["no-such-image"])
    assert sorted(image["id"] for image in explored(api, project["id"])) == sorted([a, b, c])
    assert api.post(pool, {"shared_image_ids": []}).status_code == 422


def test_images_that_are_not_ready_are_not_added_to_a_pool(stack, api):
    # Given a registered photo, a "photo" that is text, an unsafe key, and a photo since deleted
    project = create_project(api)
    pool = f"{PROJECTS}/{project['id']}/images"
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    s3.put_object(Bucket=bucket, Key="nr/text.jpg", Body=b"just text")
    s3.put_object(Bucket=bucket, Key="nr/evil\u202egnp.png", Body=imagefiles.picture(16, 16, seed=1))
    good, gone = register(stack, api, "nr/good.jpg", "nr/gone.jpg")
    stack.pump.drain()
    s3.delete_object(Bucket=bucket, Key="nr/gone.jpg")
    stack.pump.drain()
    listed = {image["file_path"]: image for image in api.get("/api/v1/shared-images?folder=nr&page_size=50").json["data"]}
    text, unsafe = listed["nr/text.jpg"]["id"], listed["nr/evil\u202egnp.png"]["id"]
    assert [listed[key]["status"] for key in ("nr/text.jpg", "nr/evil\u202egnp.png", "nr/gone.jpg")] == [
        "failed", "failed", "missing"]
    # When all four are added
    response = api.post(pool, {"shared_image_ids": [good, text, unsafe, gone]})
    # Then only the ready one is, and the others are named
    assert response.status_code == 200, response.json
    data = response.json["data"]
    assert (data["added"], data["not_ready"], data["total_not_ready"]) == ([good], [text, unsafe, gone], 3)
    assert "3 not added" in response.json["message"]
    assert [image["id"] for image in explored(api, project["id"])] == [good]


def test_removing_a_pool_image_is_refused_while_a_task_uses_it(stack, api):
    # Given two pool images, one of them in a task
    project = create_project(api)
    pool = f"{PROJECTS}/{project['id']}/images"
    used, free = register(stack, api, "rm/used.jpg", "rm/free.jpg")
    api.post(pool, {"shared_image_ids": [used, free]})
    task = api.post(f"{PROJECTS}/{project['id']}/tasks", {"name": "T", "shared_image_ids": [used]})
    assert task.status_code == 201, task.json
    # When / Then
    assert api.delete(f"{pool}/{free}").status_code == 200
    refused = api.delete(f"{pool}/{used}")
    assert refused.status_code == 409 and used in refused.json["error"]["message"]
    assert [image["id"] for image in explored(api, project["id"])] == [used]
    # And the registry still has the removed one
    assert api.get(f"/api/v1/shared-images/{free}").status_code == 200


def test_activity_timeline_records_project_member_and_pool_changes_newest_first(client, stack, api):
    # Given a project that was created, got a member and images
    project = create_project(api, "Timeline")
    user(client, stack, "bob")
    api.post(f"{PROJECTS}/{project['id']}/members", {"user_id": "bob", "role": "viewer"})
    ids = register(stack, api, "act/a.jpg", "act/b.jpg")
    api.post(f"{PROJECTS}/{project['id']}/images", {"shared_image_ids": ids})
    # When
    entries = activity(api, project["id"])
    # Then
    assert [(e["entity_type"], e["action"]) for e in entries] == [
        ("pool", "images_added"), ("member", "member_added"), ("project", "created")]
    assert all(entry["actor"] == "alice" for entry in entries)
    assert [e["summary"] for e in entries] == ["Added 2 image(s) to the pool", "Added bob as viewer",
                                               'Created project "Timeline"']
    stamps = [entry["created_at"] for entry in entries]
    assert stamps == sorted(stamps, reverse=True)
    assert entries[1]["entity_id"] == "bob" and entries[1]["details"]["role"] == "viewer"
    # And pages follow the cursor without overlap
    first = api.get(f"{PROJECTS}/{project['id']}/activity?page_size=2").json
    rest = api.get(f"{PROJECTS}/{project['id']}/activity?page_size=2&cursor={first['meta']['next_cursor']}").json
    assert [e["id"] for e in first["data"] + rest["data"]] == [e["id"] for e in entries]
