"""Explore: a project's pool through the one filter model.

One world per module (40 real images in a few folders, a pool, tags, tasks with splits, some
annotations) answers randomized filters exactly as a plain in-memory filter over the facts this
test uploaded and the links it made; then paging, cursors, validation, the fields of each image,
and tagging seen in two projects at once.
"""
from __future__ import annotations

import base64
import json
import random
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlencode

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from tests.conftest import ROOT, Api
from tests.imagefiles import picture

IMAGES = "/api/v1/shared-images"
FOLDERS = ("set/a/", "set/b/deep/", "other/", "setx/")
STEMS = ("Cat", "dog", "sunset", "CAR", "tree-top", "Sky")
SIZES = (16, 24, 32, 48, 64, 96, 120)
PREFIXES = ("set", "set/", "set/a/", "set/b/", "set/b/deep/", "set/b/deep/Cat", "other/", "oth", "setx/", "nope/")
LABELS = [{"name": "cat", "annotation_type": "bbox"}, {"name": "dog", "annotation_type": "any"}]
RANGES = (("min_width", "max_width", "width"), ("min_height", "max_height", "height"),
          ("min_file_size", "max_file_size", "file_size_bytes"))


@dataclass
class World:
    api: Api
    project: str
    facts: dict[str, dict]  # image id → the registry's record of it
    pool: set[str]
    tags: list[str]
    tagged: dict[str, set[str]]  # tag id → images carrying it
    tasks: dict[str, dict]  # task id → {"name", "split", "jobs": {job id: [image ids]}}
    annotated: set[tuple[str, str]]  # (job id, image id) with at least one annotation

    def explore(self, query: dict, project: str | None = None):
        return self.api.get(f"/api/v1/projects/{project or self.project}/explore?{urlencode(query)}")

    def placements(self, image_id: str) -> set[tuple]:
        return {(task_id, task["name"], task["split"], job_id, (job_id, image_id) in self.annotated)
                for task_id, task in self.tasks.items()
                for job_id, images in task["jobs"].items() if image_id in images}

    def expected(self, f: dict) -> list[str]:
        """The pool images `f` selects, newest first then by id: the spec, written out plainly."""
        def keep(image_id: str) -> bool:
            facts, placed = self.facts[image_id], self.placements(image_id)
            has = [image_id in self.tagged[tag] for tag in f.get("tag_ids", [])]
            excluded = [image_id in self.tagged[tag] for tag in f.get("exclude_tag_ids", [])]
            splits = {place[2] for place in placed} - {"none"} or {"none"}  # "none": in no split
            return all([
                f.get("search", "").casefold() in facts["filename"].casefold(),
                not has or (all(has) if f.get("tag_mode") == "all" else any(has)),
                not excluded or not (all(excluded) if f.get("exclude_mode") == "all" else any(excluded)),
                not f.get("task_id") or any(place[0] in f["task_id"] for place in placed),
                "job_id" not in f or any(place[3] == f["job_id"] for place in placed),
                "is_annotated" not in f or any(place[4] for place in placed) == f["is_annotated"],
                "split" not in f or f["split"] in splits,
                *(f.get(low, 0) <= facts[fact] <= f.get(high, facts[fact]) for low, high, fact in RANGES),
                facts["file_path"].startswith(f.get("path_prefix", "")),
            ])

        chosen = [image_id for image_id in self.pool if keep(image_id)]
        return sorted(chosen, key=lambda i: (-datetime.fromisoformat(self.facts[i]["created_at"]).timestamp(), i))


def as_query(f: dict) -> dict:
    return {name: ",".join(value) if isinstance(value, list) else str(value).lower() if isinstance(value, bool)
            else value for name, value in f.items()}


def build_world(stack, api: Api) -> World:
    rng = random.Random(20240604)
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    uploaded = {}
    for n in range(40):
        fmt = "PNG" if n % 3 == 0 else "JPEG"
        key = f"{FOLDERS[n % 4]}{STEMS[n % 6]}_{n:02d}.{'png' if fmt == 'PNG' else 'jpg'}"
        uploaded[key] = (rng.choice(SIZES), rng.choice(SIZES))
        s3.put_object(Bucket=bucket, Key=key, Body=picture(*uploaded[key], seed=n, fmt=fmt))
    registered = api.post(f"{IMAGES}/register", {"file_paths": list(uploaded)})
    assert registered.json["data"]["total_registered"] == 40, registered.json
    facts = {}
    for image in registered.json["data"]["registered"]:
        facts[image["id"]] = api.get(f"{IMAGES}/{image['id']}").json["data"]
        assert (facts[image["id"]]["width"], facts[image["id"]]["height"]) == uploaded[image["file_path"]]
    ids = sorted(facts)
    project = api.post("/api/v1/projects", {"name": "explore", "labels": LABELS}).json["data"]["id"]
    pool = set(rng.sample(ids, 36))
    assert api.post(f"/api/v1/projects/{project}/images", {"shared_image_ids": sorted(pool)}).json["data"][
        "total_added"] == 36
    tags, tagged = [], {}
    for n in range(6):
        tag = api.post("/api/v1/tags", {"name": f"tag-{n}", "color": "#12AB34"}).json["data"]["id"]
        tags.append(tag)
        tagged[tag] = set(rng.sample(ids, rng.randrange(4, 22)))
        assert api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": sorted(tagged[tag]), "tag_ids": [tag]}).status_code == 200
    tasks = {}
    for n, split in enumerate(("train", "val", "none")):
        chosen = rng.sample(sorted(pool), rng.randrange(12, 19))
        chunk = (3, 4, 4)[n]
        created = api.post(f"/api/v1/projects/{project}/tasks", {
            "name": f"task-{n}", "chunk_size": chunk, "split": "test", "shared_image_ids": chosen})
        assert created.status_code == 201, created.json
        task_id = created.json["data"]["task"]["id"]
        patched = api.patch(f"/api/v1/projects/{project}/tasks/{task_id}", {"split": split})
        assert patched.json["data"]["split"] == split
        jobs = {job["id"]: chosen[job["sequence_number"] * chunk:(job["sequence_number"] + 1) * chunk]
                for job in created.json["data"]["jobs"]}
        assert len(jobs) >= 3
        tasks[task_id] = {"name": f"task-{n}", "split": split, "jobs": jobs}
    placements = sorted((job, image) for task in tasks.values() for job, images in task["jobs"].items()
                        for image in images)
    annotated = set(rng.sample(placements, 10))
    for job, image in sorted(annotated):
        body = {"annotations": [{"type": "bbox", "label": "cat", "state": "confirmed", "bbox": [1, 1, 8, 8]}]}
        assert api.request("PUT", f"/api/v1/jobs/{job}/images/{image}/annotations", body).status_code == 200
    # One image annotated and then cleared again: it has no annotation left in that job.
    cleared = sorted(set(placements) - annotated)[0]
    for annotations in ([{"type": "classification", "label": "dog"}], []):
        api.request("PUT", f"/api/v1/jobs/{cleared[0]}/images/{cleared[1]}/annotations", {"annotations": annotations})
    return World(api, project, facts, pool, tags, tagged, tasks, annotated)


@pytest.fixture(scope="module")
def world(local_stack):
    """Built once; tests that empty the stack (`stack`, `api`) come after every test that uses it."""
    from chalice.test import Client

    local_stack.reset()
    with Client(local_stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield build_world(local_stack, Api(client, local_stack.token(sub="alice", email="alice@example.com",
                                                                      groups=[])))


@st.composite
def image_filters(draw, world: World) -> dict:
    """A filter with a few of the conditions, each drawn from values the world has (and some it has not)."""
    sometimes = lambda: draw(st.sampled_from([False, False, False, True]))  # noqa: E731 - shrinks to "absent"
    f: dict = {}
    if sometimes():
        name = draw(st.sampled_from(sorted(facts["filename"] for facts in world.facts.values())))
        start = draw(st.integers(0, len(name) - 1))
        part = name[start:start + draw(st.integers(1, 6))]
        f["search"] = draw(st.sampled_from([part, part.upper(), part.swapcase()])
                           | st.text("abxyz_-.09", min_size=1, max_size=4))
    for ids, mode in (("tag_ids", "tag_mode"), ("exclude_tag_ids", "exclude_mode")):
        if sometimes():
            f[ids] = draw(st.lists(st.sampled_from(world.tags), min_size=1, max_size=3, unique=True))
            if draw(st.booleans()):
                f[mode] = draw(st.sampled_from(["any", "all"]))
    if sometimes():
        f["task_id"] = draw(st.lists(st.sampled_from(sorted(world.tasks)), min_size=1, max_size=2, unique=True))
    if sometimes():
        f["job_id"] = draw(st.sampled_from(sorted(job for task in world.tasks.values() for job in task["jobs"])))
    if sometimes():
        f["is_annotated"] = draw(st.booleans())
    if sometimes():
        f["split"] = draw(st.sampled_from(["none", "train", "val", "test"]))
    for low, high, fact in RANGES:
        if sometimes():
            values = sorted({facts[fact] + d for facts in world.facts.values() for d in (-1, 0, 1)})
            bounds = sorted(draw(st.lists(st.sampled_from(values), min_size=2, max_size=2)))
            for name, value in zip((low, high), bounds):
                if draw(st.booleans()):
                    f[name] = value
    if sometimes():
        f["path_prefix"] = draw(st.sampled_from(PREFIXES))
    return f


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_explore_returns_what_a_plain_filter_over_the_same_data_returns(world, data):
    # Given a filter drawn from the world's own values
    f = data.draw(image_filters(world), label="filter")
    # When Explore answers it
    response = world.explore({**as_query(f), "page_size": 200})
    # Then it lists exactly the images the in-memory filter keeps, newest first, with the right total
    assert response.status_code == 200, response.json
    page = response.json["data"]
    expected = world.expected(f)
    event("selects nothing" if not expected else "selects the whole pool" if len(expected) == len(world.pool)
          else "selects some")
    assert [image["id"] for image in page["images"]] == expected
    assert page["total"] == len(expected)
    # And each image carries its tags and placements as the world made them
    for image in page["images"]:
        assert {tag["id"] for tag in image["tags"]} == {tag for tag in world.tags if image["id"] in world.tagged[tag]}
        placed = world.placements(image["id"])
        assert {(p["task_id"], p["task_name"], p["split"], p["job_id"], p["annotated"])
                for p in image["tasks"]} == placed
        assert image["is_annotated"] == any(place[4] for place in placed)


def test_filters_applied_echoes_the_conditions_given(world):
    # Given a query with several conditions and paging fields
    tags = world.tags[:2]
    query = {"search": "cat", "tag_ids": ",".join(tags), "tag_mode": "all", "min_width": 20, "is_annotated": "false",
             "path_prefix": "set/", "split": "none", "page_size": 5}
    # When Explore answers it
    page = world.explore(query).json["data"]
    # Then filters_applied lists exactly those conditions, typed, and no paging field
    assert page["filters_applied"] == {"search": "cat", "tag_ids": tags, "tag_mode": "all", "min_width": 20,
                                       "is_annotated": False, "path_prefix": "set/", "split": "none"}
    # And no condition means none applied
    assert world.explore({}).json["data"]["filters_applied"] == {}


@pytest.mark.parametrize("size", [7, 12])  # 36 pool images: a short last page, and none
def test_pages_and_cursors_visit_every_image_once_in_order(world, size):
    # Given the whole pool in Explore order
    everything = world.expected({})
    # When it is read a few at a time by page number
    by_page, page = [], 1
    while True:
        data = world.explore({"page": page, "page_size": size}).json["data"]
        assert (data["page"], data["page_size"], data["total"]) == (page, size, len(everything))
        if not data["images"]:
            break
        by_page += [image["id"] for image in data["images"]]
        page += 1
    # And by following next_cursor
    by_cursor, query = [], {"page_size": size}
    while True:
        data = world.explore(query).json["data"]
        assert len(data["images"]) == size or data["next_cursor"] is None
        by_cursor += [image["id"] for image in data["images"]]
        if data["next_cursor"] is None:
            break
        query = {"page_size": size, "cursor": data["next_cursor"]}
    # Then both visit every image exactly once, in order
    assert by_page == everything
    assert by_cursor == everything


@pytest.mark.parametrize("cursor", ["not a cursor!", base64.urlsafe_b64encode(b"[1, 2]").decode(),
                                    base64.urlsafe_b64encode(b'{"at": "2024-01-01"}').decode(),
                                    base64.urlsafe_b64encode(b"\xff\xfe").decode()])
def test_a_malformed_cursor_is_refused_with_400(world, cursor):
    # When Explore gets a cursor it never issued
    response = world.explore({"cursor": cursor})
    # Then it says so and asks to start again
    assert response.status_code == 400
    assert response.json["error"]["details"] == [{"field": "cursor", "location": "query", "message": "malformed",
                                                 "type": "value_error"}]


@settings(max_examples=25, deadline=None)
@given(document=st.tuples(st.datetimes(timezones=st.none() | st.timezones()).map(datetime.isoformat),
                          st.text(max_size=40)).map(list)
       | st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                      lambda inner: st.lists(inner, max_size=3), max_leaves=4))
def test_any_decodable_cursor_is_answered_or_refused_never_a_crash(world, document):
    # Given a cursor carrying any JSON
    cursor = base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")
    # When Explore gets it
    response = world.explore({"cursor": cursor, "page_size": 200})
    # Then it either reads on from there or refuses with 400
    assert response.status_code in (200, 400), response.json
    if response.status_code == 200:
        ids = [image["id"] for image in response.json["data"]["images"]]
        everything = world.expected({})
        assert ids == everything[len(everything) - len(ids):]


@pytest.mark.parametrize("query, fields", [
    ({"page_size": 201}, {"page_size"}),
    ({"colour": "red"}, {"colour"}),
    ({"tag_mode": "some"}, {"tag_mode"}),
])
def test_invalid_queries_are_refused_with_422_naming_the_field(world, query, fields):
    # When Explore gets a query outside its model
    response = world.explore(query)
    # Then it refuses with 422 naming the field
    assert response.status_code == 422
    assert {detail["field"] for detail in response.json["error"]["details"]} == fields


def test_an_inverted_range_is_refused_with_422_naming_both_bounds(world):
    # When the lower width bound is above the upper one
    response = world.explore({"min_width": 50, "max_width": 10})
    # Then it is refused, and the error names both fields and their values
    assert response.status_code == 422
    error = json.dumps(response.json["error"])
    assert "min_width (50)" in error and "max_width (10)" in error


def test_each_image_carries_tags_placements_annotation_status_and_thumbnail(world):
    # Given an annotated image that is tagged
    job, image_id = next((job, image) for job, image in sorted(world.annotated)
                         if any(image in world.tagged[tag] for tag in world.tags))
    # When Explore lists that image's job
    page = world.explore({"job_id": job, "page_size": 200}).json["data"]
    [image] = [image for image in page["images"] if image["id"] == image_id]
    # Then the image shows its tags, where it is used, that it is annotated, and a thumbnail
    assert {tag["id"] for tag in image["tags"]} == {tag for tag in world.tags if image_id in world.tagged[tag]}
    assert set(image["tags"][0]) >= {"id", "name", "color"}
    assert {p["job_id"] for p in image["tasks"]} >= {job}
    assert all(set(p) == {"task_id", "task_name", "split", "job_id", "annotated"} for p in image["tasks"])
    assert (image["is_annotated"], image["annotation_status"]) == (True, "annotated")
    assert image["thumbnail_url"]
    # And an image in no task has no placements and is unannotated
    idle = world.explore({"split": "none", "page_size": 200}).json["data"]["images"]
    loose = [image for image in idle if not image["tasks"]]
    assert loose and all(image["annotation_status"] == "unannotated" for image in loose)


def test_tagging_in_the_registry_shows_in_two_projects_at_once(api, stack):
    # Given two projects whose pools share three images, and a tag
    s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    keys = [f"shared/img-{n}.jpg" for n in range(3)]
    for n, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=picture(40 + n, 30, seed=n))
    ids = [image["id"] for image in api.post(f"{IMAGES}/register", {"file_paths": keys}).json["data"]["registered"]]
    projects = [api.post("/api/v1/projects", {"name": name}).json["data"]["id"] for name in ("one", "two")]
    for project in projects:
        api.post(f"/api/v1/projects/{project}/images", {"shared_image_ids": ids})
    tag = api.post("/api/v1/tags", {"name": "night"}).json["data"]["id"]

    def tagged_in(project):
        page = api.get(f"/api/v1/projects/{project}/explore?tag_ids={tag}").json["data"]
        return [image["id"] for image in page["images"]], [[t["id"] for t in image["tags"]] for image in page["images"]]

    # When two images are tagged in the registry
    assert api.post(f"{IMAGES}/bulk-tag", {"shared_image_ids": ids[:2], "tag_ids": [tag]}).status_code == 200
    # Then both projects show them with the tag straight away
    for project in projects:
        shown, tags = tagged_in(project)
        assert sorted(shown) == sorted(ids[:2])
        assert tags == [[tag], [tag]]
    # When one is untagged
    assert api.post(f"{IMAGES}/bulk-untag", {"shared_image_ids": ids[:1], "tag_ids": [tag]}).status_code == 200
    # Then both projects drop it straight away
    for project in projects:
        assert tagged_in(project)[0] == [ids[1]]


@pytest.mark.parametrize(("path", "field"), [
    ("explore?min_width=99999999999999999999999", "min_width"),
    ("explore?max_file_size=9223372036854775808", "max_file_size"),
    ("explore?page=9223372036854775807", "page"),
])
def test_numbers_beyond_any_real_one_are_422_naming_the_field(world, path, field):
    response = world.api.get(f"/api/v1/projects/{world.project}/{path}")
    assert response.status_code == 422, response.json
    assert field in str(response.json["error"])


def test_the_registry_list_refuses_huge_pages_and_too_many_tags(world):
    assert world.api.get("/api/v1/shared-images?page=1000000000000000000").status_code == 422
    many = ",".join(f"t{n}" for n in range(60))
    response = world.api.get(f"/api/v1/shared-images?tag_ids={many}")
    assert response.status_code == 422 and "tag_ids" in str(response.json["error"])
