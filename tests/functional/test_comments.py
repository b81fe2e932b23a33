"""Comments through the API: threads on a project and on its images, paging newest first, editing
and deleting one's own, moderation by editors, refusals, mentions of members; and a project's
custom metadata (RFC 7396 merge on the project's revision)."""
from __future__ import annotations

import pytest

from chalicelib.services.images import MAX_METADATA_BYTES
from tests.functional.test_projects import PROJECTS, activity, create_project, register, user


@pytest.fixture
def team(client, stack, api):
    """alice owns a project with bob (editor), carol (annotator) and dave (viewer); erin is outside.
    One registered image is in the pool."""
    people = {"alice": api, **{name: user(client, stack, name) for name in ("bob", "carol", "dave", "erin")}}
    project = create_project(api, "Commented")
    base = f"{PROJECTS}/{project['id']}"
    for name, role in (("bob", "editor"), ("carol", "annotator"), ("dave", "viewer")):
        assert api.post(f"{base}/members", {"user_id": name, "role": role}).status_code == 201
    [image] = register(stack, api, "comments/one.jpg")
    assert api.post(f"{base}/images", {"shared_image_ids": [image]}).status_code in (200, 201)
    return people, base, image


def comment(api, path: str, text: str, **extra) -> dict:
    response = api.post(path, {"text": text, **extra})
    assert response.status_code == 201, response.json
    return response.json["data"]


def listed(api, path: str) -> list[dict]:
    response = api.get(f"{path}?page_size=200")
    assert response.status_code == 200, response.json
    return response.json["data"]


# Threads ------------------------------------------------------------------------------------------


def test_a_thread_answers_to_any_depth_and_lists_newest_first(team):
    people, base, _ = team
    # Given a comment, an answer and an answer to the answer, by three roles
    first = comment(people["alice"], f"{base}/comments", "Start here")
    second = comment(people["carol"], f"{base}/comments", "Why?", parent_id=first["id"])
    third = comment(people["bob"], f"{base}/comments", "Because", parent_id=second["id"])
    # When anyone in the project, a viewer too, lists the thread
    found = listed(people["dave"], f"{base}/comments")
    # Then it is flat, newest first, each naming what it answers
    assert [(c["text"], c["parent_id"], c["author_id"]) for c in found] == [
        ("Because", second["id"], "bob"), ("Why?", first["id"], "carol"), ("Start here", None, "alice")]
    assert third["project_id"] == base.rsplit("/", 1)[1] and third["image_id"] is None


def test_an_image_has_its_own_thread_apart_from_the_projects(team):
    people, base, image = team
    # Given a comment on the project and two on the image
    comment(people["alice"], f"{base}/comments", "About the project")
    on_image = f"{base}/images/{image}/comments"
    first = comment(people["carol"], on_image, "Blurry")
    comment(people["bob"], on_image, "Agreed", parent_id=first["id"])
    # Then each thread holds its own
    assert [c["text"] for c in listed(people["dave"], on_image)] == ["Agreed", "Blurry"]
    assert [c["image_id"] for c in listed(people["dave"], on_image)] == [image, image]
    assert [c["text"] for c in listed(people["dave"], f"{base}/comments")] == ["About the project"]
    # And an answer must be in the same thread: a project comment is no parent on the image
    project_comment = listed(people["alice"], f"{base}/comments")[0]["id"]
    refused = people["bob"].post(on_image, {"text": "x", "parent_id": project_comment})
    assert refused.status_code == 404 and project_comment in refused.json["error"]["message"]


def test_pages_go_newest_first_and_a_cursor_stays_in_its_thread(team):
    people, base, image = team
    # Given seven comments
    texts = [f"note {n}" for n in range(7)]
    for text in texts:
        comment(people["carol"], f"{base}/comments", text)
    # When reading three at a time, following the cursor
    seen, cursor, pages = [], None, 0
    while True:
        response = people["dave"].get(f"{base}/comments?page_size=3" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.json
        seen += [c["text"] for c in response.json["data"]]
        pages += 1
        cursor = response.json["meta"]["next_cursor"]
        if cursor is None:
            break
    # Then every comment comes once, newest first
    assert seen == texts[::-1] and pages >= 3
    # And a cursor of the project's thread is no cursor of the image's
    first_page = people["dave"].get(f"{base}/comments?page_size=3").json["meta"]["next_cursor"]
    refused = people["dave"].get(f"{base}/images/{image}/comments?cursor={first_page}")
    assert refused.status_code == 400 and refused.json["error"]["details"][0]["field"] == "cursor"


def test_edit_and_delete_your_own_and_the_log_records_them(team):
    people, base, _ = team
    mine = comment(people["carol"], f"{base}/comments", "Frist")
    answer = comment(people["bob"], f"{base}/comments", "typo", parent_id=mine["id"])
    # When the author edits it
    edited = people["carol"].patch(f"{base}/comments/{mine['id']}", {"text": "First"})
    # Then it is changed and says who edited
    assert edited.status_code == 200, edited.json
    assert (edited.json["data"]["text"], edited.json["data"]["edited_by"]) == ("First", "carol")
    # When the author deletes it
    deleted = people["carol"].delete(f"{base}/comments/{mine['id']}")
    assert deleted.status_code == 200, deleted.json
    # Then a tombstone keeps the answer's place; its text is gone
    found = {c["id"]: c for c in listed(people["alice"], f"{base}/comments")}
    assert (found[mine["id"]]["deleted"], found[mine["id"]]["text"], found[mine["id"]]["deleted_by"]) == (
        True, None, "carol")
    assert found[answer["id"]]["parent_id"] == mine["id"]
    # And a deleted comment cannot be edited or deleted again
    assert people["carol"].patch(f"{base}/comments/{mine['id']}", {"text": "again"}).status_code == 404
    assert people["carol"].delete(f"{base}/comments/{mine['id']}").status_code == 404
    # And the project's activity has each mutation
    entries = [(e["entity_type"], e["entity_id"], e["action"]) for e in activity(people["alice"], base.rsplit("/", 1)[1])]
    for action in ("created", "edited", "deleted"):
        assert ("comment", mine["id"], action) in entries


def test_editors_and_owners_moderate_annotators_do_not(team):
    people, base, image = team
    path = f"{base}/images/{image}/comments"
    carols = comment(people["carol"], path, "Spam spam")
    alices = comment(people["alice"], path, "Owner's note")
    # When an annotator touches someone else's comment: refused
    assert people["carol"].patch(f"{path}/{alices['id']}", {"text": "mine now"}).status_code == 403
    assert people["carol"].delete(f"{path}/{alices['id']}").status_code == 403
    # When an editor moderates
    edited = people["bob"].patch(f"{path}/{carols['id']}", {"text": "[removed link]"})
    assert edited.status_code == 200, edited.json
    assert (edited.json["data"]["author_id"], edited.json["data"]["edited_by"]) == ("carol", "bob")
    assert people["bob"].delete(f"{path}/{carols['id']}").status_code == 200
    # And the owner deletes the editor's... own again: owners moderate too
    bobs = comment(people["bob"], path, "Off topic")
    assert people["alice"].delete(f"{path}/{bobs['id']}").status_code == 200
    assert [c["text"] for c in listed(people["dave"], path)] == [None, "Owner's note", None]


def test_refusals(team, client):
    people, base, image = team
    # A viewer reads but does not write
    refused = people["dave"].post(f"{base}/comments", {"text": "hello"})
    assert refused.status_code == 403 and "viewer" in refused.json["error"]["message"]
    # Someone outside the project gets 404 for anything of it
    assert people["erin"].post(f"{base}/comments", {"text": "hello"}).status_code == 404
    assert people["erin"].get(f"{base}/comments").status_code == 404
    # Too long, empty, or an unknown field: 422
    assert people["carol"].post(f"{base}/comments", {"text": "x" * 5001}).status_code == 422
    assert people["carol"].post(f"{base}/comments", {"text": "   "}).status_code == 422
    assert people["carol"].post(f"{base}/comments", {"text": "x", "author_id": "bob"}).status_code == 422
    assert comment(people["carol"], f"{base}/comments", "x" * 5000)["text"] == "x" * 5000
    # An image not in the pool: 404 naming it, for writing and reading
    ghost = "0" * 8 + "-0000-0000-0000-" + "0" * 12
    for response in (people["carol"].post(f"{base}/images/{ghost}/comments", {"text": "where?"}),
                     people["carol"].get(f"{base}/images/{ghost}/comments")):
        assert response.status_code == 404 and ghost in response.json["error"]["message"]
    # An unknown parent or comment: 404 naming it
    missing = people["carol"].post(f"{base}/comments", {"text": "re", "parent_id": "nope"})
    assert missing.status_code == 404 and "nope" in missing.json["error"]["message"]
    assert people["carol"].patch(f"{base}/comments/nope", {"text": "x"}).status_code == 404
    # A patch with nothing to change: 422
    mine = comment(people["carol"], f"{base}/comments", "short")
    assert people["carol"].patch(f"{base}/comments/{mine['id']}", {}).status_code == 422


# Mentions -----------------------------------------------------------------------------------------


def mentions_of(api) -> list[dict]:
    response = api.get("/api/v1/me/mentions?page_size=200")
    assert response.status_code == 200, response.json
    return response.json["data"]


def test_mentioning_members_lists_the_mention_for_them(team):
    people, base, image = team
    project_id = base.rsplit("/", 1)[1]
    # When bob mentions carol and dave on the image
    made = comment(people["bob"], f"{base}/images/{image}/comments", "@carol @dave look", mentions=["carol", "dave"])
    assert made["mentions"] == ["carol", "dave"]
    # Then each finds it in their mentions: the comment, project, image and who mentioned
    [mention] = mentions_of(people["carol"])
    assert (mention["project_id"], mention["image_id"], mention["comment_id"], mention["mentioned_by"]) == (
        project_id, image, made["id"], "bob")
    assert mention["comment"]["text"] == "@carol @dave look"
    assert [m["comment_id"] for m in mentions_of(people["dave"])] == [made["id"]]
    assert mentions_of(people["alice"]) == []


def test_a_non_member_cannot_be_mentioned(team):
    people, base, _ = team
    # When someone outside the project is mentioned
    refused = people["bob"].post(f"{base}/comments", {"text": "hi", "mentions": ["carol", "erin", "zed"]})
    # Then the comment is refused, naming them, and nothing is recorded
    assert refused.status_code == 422, refused.json
    assert "erin" in refused.json["error"]["message"] and "zed" in refused.json["error"]["message"]
    assert listed(people["alice"], f"{base}/comments") == []
    assert mentions_of(people["carol"]) == [] and mentions_of(people["erin"]) == []


def test_editing_mentions_adds_new_ones_and_hides_removed_ones(team):
    people, base, _ = team
    made = comment(people["bob"], f"{base}/comments", "ping", mentions=["carol"])
    # When the edit replaces carol with dave
    edited = people["bob"].patch(f"{base}/comments/{made['id']}", {"mentions": ["dave"]})
    assert edited.status_code == 200, edited.json
    # Then dave is told, and carol's mention no longer shows
    assert [m["comment_id"] for m in mentions_of(people["dave"])] == [made["id"]]
    assert mentions_of(people["carol"]) == []
    # When carol is mentioned again: her first mention shows again, once
    people["bob"].patch(f"{base}/comments/{made['id']}", {"mentions": ["dave", "carol"]})
    assert [m["comment_id"] for m in mentions_of(people["carol"])] == [made["id"]]
    # When the comment is deleted, nobody's mentions show it
    assert people["bob"].delete(f"{base}/comments/{made['id']}").status_code == 200
    assert mentions_of(people["carol"]) == [] and mentions_of(people["dave"]) == []


def test_mentions_page_newest_first(team):
    people, base, _ = team
    made = [comment(people["bob"], f"{base}/comments", f"n{n}", mentions=["carol"])["id"] for n in range(5)]
    seen, cursor = [], None
    while True:
        response = people["carol"].get("/api/v1/me/mentions?page_size=2" + (f"&cursor={cursor}" if cursor else ""))
        assert response.status_code == 200, response.json
        seen += [m["comment_id"] for m in response.json["data"]]
        cursor = response.json["meta"]["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


# Project metadata ---------------------------------------------------------------------------------


def test_project_metadata_merges_and_null_deletes(api):
    project = create_project(api, "Meta")
    path = f"{PROJECTS}/{project['id']}"
    assert project["metadata"] == {}
    # When set, then merged
    first = api.patch(path, {"metadata": {"site": "A", "camera": {"model": "X", "iso": 100}}})
    assert first.status_code == 200, first.json
    second = api.patch(path, {"metadata": {"camera": {"iso": None, "lens": "50mm"}, "site": None, "n": 3}})
    assert second.status_code == 200, second.json
    # Then every read shows the merged document
    expected = {"camera": {"model": "X", "lens": "50mm"}, "n": 3}
    assert second.json["data"]["metadata"] == expected
    assert api.get(path).json["data"]["metadata"] == expected
    assert [p["metadata"] for p in api.get(PROJECTS).json["data"] if p["id"] == project["id"]] == [expected]
    # And the name and description stay
    assert api.get(path).json["data"]["name"] == "Meta"


def test_project_metadata_too_large_is_422_and_changes_nothing(api):
    project = create_project(api, "Big")
    path = f"{PROJECTS}/{project['id']}"
    api.patch(path, {"metadata": {"keep": 1}})
    refused = api.patch(path, {"metadata": {"blob": "x" * MAX_METADATA_BYTES}})
    assert refused.status_code == 422 and refused.json["error"]["details"][0]["field"] == "metadata"
    assert api.get(path).json["data"]["metadata"] == {"keep": 1}
    # A metadata that is no object is refused too
    assert api.patch(path, {"metadata": [1, 2]}).status_code == 422


def test_project_metadata_only_for_those_who_update_the_project(team):
    people, base, _ = team
    assert people["bob"].patch(base, {"metadata": {"by": "editor"}}).status_code == 200
    assert people["carol"].patch(base, {"metadata": {"by": "annotator"}}).status_code == 403
    assert people["dave"].patch(base, {"metadata": {"by": "viewer"}}).status_code == 403
    assert people["dave"].get(base).json["data"]["metadata"] == {"by": "editor"}


def test_a_concurrent_change_is_retried_on_the_new_revision(api):
    from chalicelib.services.container import services
    from chalicelib.services.projects import ProjectService
    from chalicelib.store.projects import ProjectRepository
    from chalicelib.store.users import UserRepository

    project = create_project(api, "Raced")
    path = f"{PROJECTS}/{project['id']}"
    api.patch(path, {"metadata": {"a": 1}})

    class Racing(ProjectRepository):
        """Someone else's merge lands between our read and our first write."""
        raced = 0

        def update(self, project_id, changes, expected_rev=None):
            if expected_rev is not None and not self.raced:
                self.raced += 1
                current = super().get(project_id)
                super().update(project_id, {"metadata": {**current.metadata, "b": 2}}, expected_rev=current.rev)
            return super().update(project_id, changes, expected_rev)

    racing = Racing()
    real = services()
    services().override(projects=ProjectService(real.access, racing, UserRepository(), real.activity,
                                                real.invitations))
    try:
        response = api.patch(path, {"metadata": {"c": 3}})
    finally:
        services().reset()
    # Then both changes are kept: ours was merged again into the other one
    assert response.status_code == 200, response.json
    assert racing.raced == 1
    assert api.get(path).json["data"]["metadata"] == {"a": 1, "b": 2, "c": 3}


def test_a_member_who_left_no_longer_sees_the_projects_mentions(team):
    people, base, _ = team
    comment(people["bob"], f"{base}/comments", "for carol", mentions=["carol"])
    assert len(mentions_of(people["carol"])) == 1
    # When carol leaves the project
    assert people["carol"].delete(f"{base}/members/carol").status_code == 200
    # Then its comments no longer show in her mentions, nor can she be mentioned there
    assert mentions_of(people["carol"]) == []
    assert people["bob"].post(f"{base}/comments", {"text": "x", "mentions": ["carol"]}).status_code == 422
