"""The role × action matrix: every project-scoped route, for every kind of caller, with zero leaks.

Generated from `RULES` (chalicelib/services/access.py): each route names the action it needs, and
each caller gets the outcome that action's grant implies: no token 401; non-member 404 whose body
names nothing of the project beyond the request path; NONE 403; ANY 2xx; ASSIGNED 2xx on the
caller's job and 403 on a job assigned to nobody. Administrators may do everything.
One world is built per module; routes that destroy something act on a fresh, disposable object.
"""
from __future__ import annotations

import uuid
from urllib.parse import urlencode
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
import requests

from chalicelib.services.access import GLOBAL_ROLES, GLOBAL_RULES, ROLES, RULES, Grant, global_grant, grant
from tests.conftest import ROOT, Api, poll
from tests.imagefiles import picture

P = "/api/v1/projects/{project_id}"
J = "/api/v1/jobs/{job_id}"
OK = "2xx"
NAME = "Falcon survey 7Q"  # distinctive: a leak of the name is found by substring
SUBS = {"owner": "mx-owner", "editor": "mx-editor", "annotator": "mx-annotator", "viewer": "mx-viewer",
        "non-member": "mx-outsider", "admin": "mx-root"}
SPARE_USER = "mx-spare"
TASKED = [f"matrix/tasked/frame-{index}.jpg" for index in range(4)]  # the world task's images, 2 per job
SPARE_IMAGE = "matrix/spare.jpg"  # in the pool, in no task: removable
BOX = {"type": "bbox", "label": "cat", "state": "confirmed", "bbox": [4, 4, 20, 16]}
LABELS = [{"name": "cat", "color": "#FF8800", "annotation_type": "any"}]


@dataclass
class Call:
    path: str
    body: Any = None
    private: tuple[str, ...] = ()  # further strings a non-member must not see
    unchanged: Callable[[], bool] | None = None  # after a refusal: the target is as it was


@dataclass
class World:
    callers: dict[str, Api]
    project_id: str
    task_id: str
    jobs: dict[str, str]  # "assigned" (to the annotator) / "unassigned" → job id
    job_image: dict[str, str]  # same keys → an image of that job
    assignee: dict[str, str | None]
    images: list[str]
    spare_image: str
    filter_id: str
    export_id: str = ""
    comment_id: str = ""  # the owner's, on the project
    image_comment_id: str = ""  # the owner's, on images[0]
    private: set[str] = field(default_factory=set)

    @property
    def owner(self) -> Api:
        return self.callers["owner"]

    def p(self, suffix: str = "", project_id: str | None = None) -> str:
        return f"/api/v1/projects/{project_id or self.project_id}{suffix}"

    def j(self, job: str, suffix: str = "") -> str:
        return f"/api/v1/jobs/{self.jobs[job]}{suffix}"

    def image_path(self, job: str) -> str:
        return self.j(job, f"/images/{self.job_image[job]}/annotations")


def created(response) -> dict:
    assert response.status_code in (200, 201, 202), response.json
    return response.json["data"]


# Disposable objects for the routes that destroy or move something -----------------------------------


def delete_project(w: World, job: str) -> Call:
    name = f"{NAME} disposable"
    project_id = created(w.owner.post("/api/v1/projects", {"name": name, "labels": LABELS}))["id"]
    for role in ("editor", "annotator", "viewer"):
        created(w.owner.post(w.p("/members", project_id), {"user_id": SUBS[role], "role": role}))
    return Call(w.p(project_id=project_id), private=(name,),
                unchanged=lambda: w.owner.get(w.p(project_id=project_id)).status_code == 200)


def fresh_task(w: World, assignee: str | None = None) -> dict:
    body = {"name": "Disposable", "shared_image_ids": [w.images[0]], "assignee_id": assignee}
    return created(w.owner.post(w.p("/tasks"), body))


def delete_task(w: World, job: str) -> Call:
    path = w.p(f"/tasks/{fresh_task(w)['task']['id']}")
    return Call(path, unchanged=lambda: w.owner.get(path).status_code == 200)


def move_job(w: World, job: str) -> Call:
    # new → in_progress is a valid move: a refusal can only come from access
    assignee = SUBS["annotator"] if job == "assigned" else None
    job_id = fresh_task(w, assignee)["jobs"][0]["id"]
    path = f"/api/v1/jobs/{job_id}"
    return Call(path, {"status": "in_progress"},
                unchanged=lambda: w.owner.get(path).json["data"]["status"] == "new")


def review_job(w: World, job: str) -> Call:
    # a job waiting for review; review → done is a valid move: a refusal can only come from access
    assignee = SUBS["annotator"] if job == "assigned" else None
    job_id = fresh_task(w, assignee)["jobs"][0]["id"]
    path = f"/api/v1/jobs/{job_id}"
    for status in ("in_progress", "review"):
        created(w.owner.patch(path, {"status": status}))
    return Call(path, {"status": "done"},
                unchanged=lambda: w.owner.get(path).json["data"]["status"] == "review")


def delete_filter(w: World, job: str) -> Call:
    filter_id = created(w.owner.post(w.p("/saved-filters"), {"name": "Disposable", "filter": {}}))["id"]
    path = w.p(f"/saved-filters/{filter_id}")
    return Call(path, unchanged=lambda: w.owner.get(path).status_code == 200)


def spare_member(w: World) -> None:
    created(w.owner.post(w.p("/members"), {"user_id": SPARE_USER, "role": "viewer"}))


def change_member(w: World, job: str) -> Call:
    spare_member(w)
    return Call(w.p(f"/members/{SPARE_USER}"), {"role": "viewer"})


def remove_member(w: World, job: str) -> Call:
    spare_member(w)
    return Call(w.p(f"/members/{SPARE_USER}"), unchanged=lambda: SPARE_USER in {
        member["user_id"] for member in w.owner.get(w.p("/members")).json["data"]})


def remove_pool_image(w: World, job: str) -> Call:
    created(w.owner.post(w.p("/images"), {"shared_image_ids": [w.spare_image]}))
    return Call(w.p(f"/images/{w.spare_image}"), unchanged=lambda: w.spare_image in {
        image["id"] for image in w.owner.get(w.p("/explore?page_size=200")).json["data"]["images"]})


def comments_path(w: World, on_image: bool) -> str:
    return w.p(f"/images/{w.images[0]}/comments" if on_image else "/comments")


def comment_texts(w: World, on_image: bool) -> dict[str, str | None]:
    return {c["id"]: c["text"] for c in created(w.owner.get(f"{comments_path(w, on_image)}?page_size=200"))}


def edit_comment(w: World, on_image: bool) -> Call:
    # the owner's comment, given its own text again: only its author and moderators may edit it
    comment_id = w.image_comment_id if on_image else w.comment_id
    before = comment_texts(w, on_image)
    return Call(f"{comments_path(w, on_image)}/{comment_id}", {"text": before[comment_id]},
                unchanged=lambda: comment_texts(w, on_image) == before)


def delete_comment(w: World, on_image: bool) -> Call:
    base = comments_path(w, on_image)
    comment_id = created(w.owner.post(base, {"text": "Disposable"}))["id"]
    return Call(f"{base}/{comment_id}", unchanged=lambda: any(
        c["id"] == comment_id and not c["deleted"] for c in created(w.owner.get(f"{base}?page_size=200"))))


def completed_export(w: World) -> str:
    export_id = created(w.owner.post(w.p("/exports"), {"export_mode": "detection"}))["id"]
    poll(lambda: w.owner.get(w.p(f"/exports/{export_id}")).json["data"]["status"],
         lambda status: status == "completed", f"export {export_id}")
    return export_id


def delete_export(w: World, job: str) -> Call:
    path = w.p(f"/exports/{completed_export(w)}")
    return Call(path, unchanged=lambda: w.owner.get(path).status_code == 200)


# The matrix -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    method: str
    route: str
    action: str
    build: Callable[[World, str], Call]
    variant: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}" + (f":{self.variant}" if self.variant else "")

    @property
    def job_scoped(self) -> bool:
        return self.route.startswith(J)


ROWS = [
    Row("GET", P, "project.read", lambda w, j: Call(w.p())),
    Row("PATCH", P, "project.update", lambda w, j: Call(w.p(), {"description": "Surveyed again"})),
    Row("DELETE", P, "project.delete", delete_project),
    Row("GET", f"{P}/members", "members.read", lambda w, j: Call(w.p("/members"))),
    Row("POST", f"{P}/members", "members.manage",
        lambda w, j: Call(w.p("/members"), {"user_id": SPARE_USER, "role": "viewer"})),
    Row("PATCH", f"{P}/members/{{user_id}}", "members.manage", change_member),
    Row("DELETE", f"{P}/members/{{user_id}}", "members.manage", remove_member),
    Row("POST", f"{P}/images", "pool.write",
        lambda w, j: Call(w.p("/images"), {"shared_image_ids": [w.spare_image]})),
    Row("DELETE", f"{P}/images/{{image_id}}", "pool.write", remove_pool_image),
    Row("GET", f"{P}/activity", "activity.read", lambda w, j: Call(w.p("/activity?page_size=5"))),
    Row("GET", f"{P}/explore", "pool.read", lambda w, j: Call(w.p("/explore?page_size=10"))),
    Row("GET", f"{P}/analyses/export", "pool.read", lambda w, j: Call(w.p("/analyses/export?format=csv"))),
    Row("GET", f"{P}/saved-filters", "filters.read", lambda w, j: Call(w.p("/saved-filters"))),
    Row("POST", f"{P}/saved-filters", "filters.write",
        lambda w, j: Call(w.p("/saved-filters"), {"name": "Wide ones", "filter": {"min_width": 90}})),
    Row("GET", f"{P}/saved-filters/{{filter_id}}", "filters.read",
        lambda w, j: Call(w.p(f"/saved-filters/{w.filter_id}"))),
    Row("PUT", f"{P}/saved-filters/{{filter_id}}", "filters.write",
        lambda w, j: Call(w.p(f"/saved-filters/{w.filter_id}"), {"name": "Tasked frames"})),
    Row("DELETE", f"{P}/saved-filters/{{filter_id}}", "filters.write", delete_filter),
    Row("POST", f"{P}/tasks/create-with-file-paths", "tasks.write",
        lambda w, j: Call(w.p("/tasks/create-with-file-paths"), {"name": "From paths", "file_paths": TASKED[:1]})),
    Row("POST", f"{P}/tasks", "tasks.write",
        lambda w, j: Call(w.p("/tasks"), {"name": "From ids", "shared_image_ids": w.images[:1]}), "ids"),
    Row("POST", f"{P}/tasks", "tasks.write",
        lambda w, j: Call(w.p("/tasks"), {"name": "From filter", "saved_filter_id": w.filter_id}), "saved-filter"),
    Row("GET", f"{P}/tasks", "tasks.read", lambda w, j: Call(w.p("/tasks"))),
    Row("GET", f"{P}/tasks/{{task_id}}", "tasks.read", lambda w, j: Call(w.p(f"/tasks/{w.task_id}"))),
    Row("PATCH", f"{P}/tasks/{{task_id}}", "tasks.write",
        lambda w, j: Call(w.p(f"/tasks/{w.task_id}"), {"description": "Checked"})),
    Row("DELETE", f"{P}/tasks/{{task_id}}", "tasks.write", delete_task),
    Row("GET", f"{P}/tasks/{{task_id}}/jobs", "tasks.read", lambda w, j: Call(w.p(f"/tasks/{w.task_id}/jobs"))),
    Row("GET", J, "jobs.read", lambda w, j: Call(w.j(j))),
    Row("PATCH", J, "jobs.status", move_job, "status"),
    Row("PATCH", J, "jobs.review", review_job, "review"),
    # the assignee is set to what it is: the world keeps its shape whoever is allowed
    Row("PATCH", J, "jobs.assign", lambda w, j: Call(w.j(j), {"assignee_id": w.assignee[j]}), "assign"),
    Row("GET", f"{J}/images/{{image_id}}/annotations", "annotations.read", lambda w, j: Call(w.image_path(j))),
    Row("PUT", f"{J}/images/{{image_id}}/annotations", "annotations.write",
        lambda w, j: Call(w.image_path(j), {"annotations": [BOX]})),
    # no analysis of the model in the world: a permitted promote answers with nothing to add
    Row("POST", f"{J}/predictions/promote", "annotations.write",
        lambda w, j: Call(w.j(j, "/predictions/promote"), {"model": "yolo_v8", "min_confidence": 0.5})),
    Row("POST", f"{J}/versions", "versions.create", lambda w, j: Call(w.j(j, "/versions"), {"note": "checkpoint"})),
    Row("GET", f"{J}/versions", "annotations.read", lambda w, j: Call(w.j(j, "/versions"))),
    Row("POST", f"{P}/exports/preview", "exports.read",
        lambda w, j: Call(w.p("/exports/preview"), {"export_mode": "detection"})),
    Row("POST", f"{P}/exports", "exports.write", lambda w, j: Call(w.p("/exports"), {"export_mode": "detection"})),
    Row("GET", f"{P}/exports", "exports.read", lambda w, j: Call(w.p("/exports"))),
    Row("GET", f"{P}/exports/classification-options", "exports.read",
        lambda w, j: Call(w.p("/exports/classification-options"))),
    Row("GET", f"{P}/exports/{{export_id}}", "exports.read", lambda w, j: Call(w.p(f"/exports/{w.export_id}"))),
    Row("GET", f"{P}/exports/{{export_id}}/download", "exports.read",
        lambda w, j: Call(w.p(f"/exports/{w.export_id}/download"))),
    Row("DELETE", f"{P}/exports/{{export_id}}", "exports.write", delete_export),
    Row("GET", f"{P}/split-leaks", "leaks.read", lambda w, j: Call(w.p("/split-leaks?max_distance=8"))),
    Row("GET", f"{P}/comments", "comments.read", lambda w, j: Call(w.p("/comments?page_size=5"))),
    Row("POST", f"{P}/comments", "comments.write",
        lambda w, j: Call(w.p("/comments"), {"text": "Looks good", "parent_id": w.comment_id})),
    Row("PATCH", f"{P}/comments/{{comment_id}}", "comments.moderate", lambda w, j: edit_comment(w, False)),
    Row("DELETE", f"{P}/comments/{{comment_id}}", "comments.moderate", lambda w, j: delete_comment(w, False)),
    Row("GET", f"{P}/images/{{image_id}}/comments", "comments.read",
        lambda w, j: Call(w.p(f"/images/{w.images[0]}/comments"))),
    Row("POST", f"{P}/images/{{image_id}}/comments", "comments.write",
        lambda w, j: Call(w.p(f"/images/{w.images[0]}/comments"), {"text": "Blurry", "mentions": [SUBS["editor"]]})),
    Row("PATCH", f"{P}/images/{{image_id}}/comments/{{comment_id}}", "comments.moderate",
        lambda w, j: edit_comment(w, True)),
    Row("DELETE", f"{P}/images/{{image_id}}/comments/{{comment_id}}", "comments.moderate",
        lambda w, j: delete_comment(w, True)),
]


def cases():
    """(row, caller, job, expected status) for every row and caller; ASSIGNED grants on both jobs."""
    for row in ROWS:
        for role in ROLES:
            allowed = grant(role, row.action)
            if allowed is Grant.ASSIGNED:
                assert row.job_scoped and role == "annotator", f"the world assigns jobs to annotators only ({row.id})"
                yield pytest.param(row, role, "assigned", OK, id=f"{row.id}-{role}-assigned")
                yield pytest.param(row, role, "unassigned", 403, id=f"{row.id}-{role}-unassigned")
            else:
                yield pytest.param(row, role, "assigned", OK if allowed is Grant.ANY else 403, id=f"{row.id}-{role}")
        yield pytest.param(row, "non-member", "assigned", 404, id=f"{row.id}-non-member")
        yield pytest.param(row, "no-token", "assigned", 401, id=f"{row.id}-no-token")
        yield pytest.param(row, "admin", "unassigned", OK, id=f"{row.id}-admin")


# The world --------------------------------------------------------------------------------------------


def build_world(stack, client) -> World:
    callers = {name: Api(client, stack.token(sub=sub, email=f"{sub}@example.com",
                                             groups=["admin"] if name == "admin" else []))
               for name, sub in SUBS.items()}
    callers["no-token"] = Api(client, None)
    spare = Api(client, stack.token(sub=SPARE_USER, email=f"{SPARE_USER}@example.com", groups=[]))
    for api in [*callers.values(), spare]:
        if api.token:
            assert api.get("/api/v1/projects").status_code == 200  # now a known user
    owner = callers["owner"]
    s3 = stack.aws("s3")
    for seed, key in enumerate([*TASKED, SPARE_IMAGE]):
        s3.put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key, Body=picture(96, 64, seed=seed))

    project_id = created(owner.post("/api/v1/projects", {"name": NAME, "labels": LABELS}))["id"]
    project = f"/api/v1/projects/{project_id}"
    for role in ("editor", "annotator", "viewer"):
        created(owner.post(f"{project}/members", {"user_id": SUBS[role], "role": role}))
    spare_image = created(owner.post("/api/v1/shared-images/register", {"file_paths": [SPARE_IMAGE]}))
    spare_image = spare_image["registered"][0]["id"]
    created(owner.post(f"{project}/images", {"shared_image_ids": [spare_image]}))
    task = created(owner.post(f"{project}/tasks/create-with-file-paths",
                              {"name": "Frames", "chunk_size": 2, "file_paths": TASKED}))
    job_a, job_b = (job["id"] for job in task["jobs"])
    created(owner.patch(f"/api/v1/jobs/{job_a}", {"assignee_id": SUBS["annotator"]}))
    jobs = {"assigned": job_a, "unassigned": job_b}
    job_image = {key: created(owner.get(f"/api/v1/jobs/{job_id}"))["images"][0]["image_id"]
                 for key, job_id in jobs.items()}
    images = [item["image_id"] for job_id in jobs.values()
              for item in created(owner.get(f"/api/v1/jobs/{job_id}"))["images"]]
    saved = created(owner.post(f"{project}/saved-filters",
                               {"name": "Tasked frames", "filter": {"path_prefix": "matrix/tasked/"}}))
    created(owner.request("PUT", f"/api/v1/jobs/{job_a}/images/{job_image['assigned']}/annotations",
                          {"annotations": [BOX]}))
    world = World(callers=callers, project_id=project_id, task_id=task["task"]["id"], jobs=jobs,
                  job_image=job_image, assignee={"assigned": SUBS["annotator"], "unassigned": None},
                  images=images, spare_image=spare_image, filter_id=saved["id"])
    world.private = {NAME, project_id, world.task_id, job_a, job_b, spare_image, saved["id"], *images,
                     *(SUBS[role] for role in ROLES), SPARE_USER}
    world.export_id = completed_export(world)
    world.comment_id = created(owner.post(f"{project}/comments", {"text": "Owner's note"}))["id"]
    world.image_comment_id = created(owner.post(f"{project}/images/{images[0]}/comments", {"text": "Owner's"}))["id"]
    world.private |= {world.export_id, world.comment_id, world.image_comment_id}
    return world


@pytest.fixture(scope="module")
def world(local_stack):
    from chalice.test import Client

    local_stack.reset()  # `stack` would reset per test: the world is built once and shared
    with Client(local_stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield build_world(local_stack, client)


# Tests ------------------------------------------------------------------------------------------------


def test_the_matrix_covers_every_project_scoped_route_and_every_action(local_stack):
    from chalicelib.api.routing import ROUTES

    # Given every declared route (the app is loaded, so every blueprint has registered its routes)
    assert local_stack.app is not None
    scoped = {(route.method, route.path) for route in ROUTES if route.path.startswith((P, J))}
    scoped.add(("DELETE", P))
    # Then the matrix has a row for each, and each action of RULES is enforced by some route
    assert {(row.method, row.route) for row in ROWS} == scoped
    assert {row.action for row in ROWS} == set(RULES)


@pytest.mark.parametrize(("row", "caller", "job", "expected"), cases())
def test_role_matrix(world, row, caller, job, expected):
    # Given a request the world can serve (a disposable target for destructive routes)
    call = row.build(world, job)
    # When the caller sends it
    response = world.callers[caller].request(row.method, call.path, call.body)
    # Then the outcome is the one RULES gives the caller's role
    if expected == OK:
        assert 200 <= response.status_code < 300 or response.status_code == 302, response.json
    else:
        assert response.status_code == expected, response.json
        if call.unchanged is not None:
            assert call.unchanged(), "a refused request changed its target"
    if caller in ("non-member", "no-token"):
        # And nothing of the project shows beyond what the caller put in the path
        body = response.body.decode()
        leaked = sorted(s for s in world.private | set(call.private) if s not in call.path and s in body)
        assert leaked == [], body
    if caller == "non-member":
        # And the answer is the one about a project (or job) that does not exist
        real = call.path.split("/")[4]
        ghost_id = str(uuid.uuid4())
        ghost = world.callers[caller].request(row.method, call.path.replace(real, ghost_id), call.body)
        assert ghost.body.decode().replace(ghost_id, real) == response.body.decode()


def test_explore_shows_an_annotator_only_the_jobs_assigned_to_them(world):
    # When the annotator and the editor explore the pool
    seen = {}
    for role in ("annotator", "editor"):
        images = created(world.callers[role].get(world.p("/explore?page_size=200")))["images"]
        seen[role] = {place["job_id"] for image in images for place in image["tasks"]}
    # Then the annotator's placements name only jobs assigned to them (earlier tests of this module
    # may have assigned them more); the editor's name every job, the unassigned one included
    editor = world.callers["editor"]
    assignees = {job: created(editor.get(f"/api/v1/jobs/{job}"))["assignee_id"] for job in seen["editor"]}
    assert world.jobs["assigned"] in seen["annotator"]
    assert seen["annotator"] == {job for job, who in assignees.items() if who == SUBS["annotator"]}
    assert world.jobs["unassigned"] in seen["editor"] and world.jobs["unassigned"] not in seen["annotator"]


def test_an_annotator_may_not_filter_explore_by_where_images_sit(world):
    # An annotator sees placements only in their own jobs: a split, task, job or annotated filter
    # would tell them about the others' (issue 13's outside probe)
    annotator, editor = world.callers["annotator"], world.callers["editor"]
    for query in ("split=train", f"task_id={world.task_id}", f"job_id={world.jobs['unassigned']}",
                  "is_annotated=true"):
        refused = annotator.get(world.p(f"/explore?{query}"))
        name = query.split("=", 1)[0]
        assert refused.status_code == 403 and name in refused.json["error"]["message"], (query, refused.json)
        assert editor.get(world.p(f"/explore?{query}")).status_code == 200
    assert annotator.get(world.p("/explore?search=a")).status_code == 200


def test_a_stranger_gets_404_even_for_a_bad_cursor_on_a_warm_index(world):
    # Given the project's index is warm in this instance
    assert world.callers["editor"].get(world.p("/explore")).status_code == 200
    # When someone outside the project sends a cursor this API never issued
    answer = world.callers["non-member"].get(world.p("/explore?cursor=garbage"))
    # Then it is 404, as for everything of a project they are not in
    assert answer.status_code == 404, answer.json


def test_annotators_see_only_their_jobs_in_a_task(world):
    # When the annotator and the editor read the task and its jobs
    path = world.p(f"/tasks/{world.task_id}")
    seen = {}
    for role in ("annotator", "editor"):
        jobs = created(world.callers[role].get(f"{path}/jobs"))
        detail = created(world.callers[role].get(path))["jobs"]
        assert [job["id"] for job in detail] == [job["id"] for job in jobs]
        seen[role] = [job["id"] for job in jobs]
    # Then the annotator sees the job assigned to them, the editor both
    assert seen["annotator"] == [world.jobs["assigned"]]
    assert seen["editor"] == [world.jobs["assigned"], world.jobs["unassigned"]]


# Global resources: the role × action matrix of GLOBAL_RULES ----------------------------------------------
# Its own world (the project world above is not used after this point).

GLOBAL_SUBS = {"admin": "gx-root", "contributor": "gx-contrib", "viewer": "gx-viewer", "other": "gx-other"}
GLOBAL_GROUPS = {"admin": ["admin"], "viewer": ["viewer"]}
GLOBAL_IMAGES = [f"global/{n}.jpg" for n in range(3)]


@dataclass
class GlobalWorld:
    callers: dict[str, Api]
    images: list[str]
    tag_of: dict[str, str]  # "own" (the contributor's) / "others" → a tag id
    operation_of: dict[str, str]  # same keys → an operation id
    dataset_of: dict[str, str]  # same keys → a dataset id
    counter: list[int] = field(default_factory=lambda: [0])

    def fresh_upload(self, whose: str, with_part: bool = False) -> dict:
        """A multipart upload in progress on that dataset, started by its owner (one part sent)."""
        owner = self.callers["contributor" if whose == "own" else "other"]
        dataset = self.dataset_of[whose]
        started = created(owner.post(f"{DS}/{dataset}/uploads", {"file_name": "a.zip", "size": 10}))
        upload = {"dataset": dataset, "file_name": "a.zip", "upload_id": started["upload_id"]}
        if with_part:
            sent = requests.put(started["parts"][0]["url"], data=b"0123456789", timeout=10)
            upload["parts"] = [{"part_number": 1, "etag": sent.headers["ETag"]}]
        return upload

    def fresh_dataset(self, whose: str) -> str:
        """A dataset of that owner holding one image under its prefix: something to import."""
        from chalicelib.services.container import services
        from tests import imagefiles

        owner = self.callers["contributor" if whose == "own" else "other"]
        dataset = created(owner.post(DS, {"name": f"importable {uuid.uuid4()}"}))["id"]
        services().share_bucket.put(f"datasets/{dataset}/a.jpg", imagefiles.picture(20, 10), "image/jpeg")
        return dataset

    def fresh_tag(self, whose: str, on_image: bool = False) -> str:
        self.counter[0] += 1
        creator = self.callers["contributor" if whose == "own" else "other"]
        tag_id = created(creator.post("/api/v1/tags", {"name": f"disposable {self.counter[0]}"}))["id"]
        if on_image:
            created(creator.post(f"/api/v1/shared-images/{self.images[0]}/tags", {"tag_ids": [tag_id]}))
        return tag_id


@dataclass(frozen=True)
class GlobalRow:
    method: str
    route: str
    action: str
    build: Callable[[GlobalWorld, str], Call]
    variant: str = ""
    refused: int = 403  # what OWN answers on what others made (operations: 404, they stay private)

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}" + (f":{self.variant}" if self.variant else "")


def _delete_tag(w: GlobalWorld, whose: str) -> Call:
    tag_id = w.fresh_tag(whose)
    return Call(f"/api/v1/tags/{tag_id}", unchanged=lambda: w.callers["admin"].get(f"/api/v1/tags/{tag_id}").status_code == 200)


def _patch_tag(w: GlobalWorld, whose: str) -> Call:
    path = f"/api/v1/tags/{w.tag_of[whose]}"
    before = created(w.callers["admin"].get(path))["description"]
    return Call(path, {"description": f"checked {uuid.uuid4()}"},
                unchanged=lambda: created(w.callers["admin"].get(path))["description"] == before)


def _force_delete_tag(w: GlobalWorld, whose: str) -> Call:
    tag_id = w.fresh_tag(whose, on_image=True)
    return Call(f"/api/v1/tags/{tag_id}?force=true",
                unchanged=lambda: w.callers["admin"].get(f"/api/v1/tags/{tag_id}").status_code == 200)


def _patch_dataset(w: GlobalWorld, whose: str) -> Call:
    path = f"{DS}/{w.dataset_of[whose]}"
    before = created(w.callers["admin"].get(path))["description"]
    return Call(path, {"description": f"checked {uuid.uuid4()}"},
                unchanged=lambda: created(w.callers["admin"].get(path))["description"] == before)


def _import_call(w: GlobalWorld, whose: str) -> Call:
    dataset = w.fresh_dataset(whose)
    path = f"{DS}/{dataset}"
    return Call(f"{path}/import", {"chunk_size": 10},
                unchanged=lambda: created(w.callers["admin"].get(path))["imports"] == [])


def _delete_staged_call(w: GlobalWorld, whose: str) -> Call:
    from chalicelib.services.container import services
    from chalicelib.services.datasets import upload_key

    dataset = w.dataset_of[whose]
    w.counter[0] += 1
    name = f"staged{w.counter[0]}.json"
    services().documents_bucket.put(upload_key(dataset, name), b"{}", "application/json")
    return Call(f"{DS}/{dataset}/uploads/{name}",
                unchanged=lambda: services().documents_bucket.exists(upload_key(dataset, name)))


def _upload_call(w: GlobalWorld, whose: str, suffix: str, with_part: bool = False, query: bool = False) -> Call:
    upload = w.fresh_upload(whose, with_part)
    ref = {"file_name": upload["file_name"], "upload_id": upload["upload_id"]}
    base = f"{DS}/{upload['dataset']}/uploads/{suffix}"
    if query:
        return Call(f"{base}?{urlencode({**ref, **({'size': 10} if suffix == 'part-urls' else {})})}")
    body = {**ref, **({"parts": upload["parts"]} if with_part else {})}
    return Call(base, body, unchanged=lambda: _still_uploading(upload))


def _still_uploading(upload: dict) -> bool:
    from chalicelib.services.container import services
    from chalicelib.services.datasets import upload_key

    key = upload_key(upload["dataset"], upload["file_name"])
    return services().documents_bucket.parts(key, upload["upload_id"]) is not None


def _dataset_state(w: GlobalWorld, dataset: str) -> str:
    return created(w.callers["admin"].get(f"{DS}/{dataset}"))["state"]


def _delete_dataset_call(w: GlobalWorld, whose: str, force: bool = False) -> Call:
    # Forcing is refused to everyone but administrators, even on their own datasets.
    dataset = w.fresh_dataset("own" if force else whose)
    name = created(w.callers["admin"].get(f"{DS}/{dataset}"))["name"]
    return Call(f"{DS}/{dataset}", {"confirm_dataset_name": name, "create_backup": False, "force_delete": force},
                unchanged=lambda: _dataset_state(w, dataset) == "active")


def _deleted_dataset_call(w: GlobalWorld, whose: str, action: str) -> Call:
    from chalicelib.clock import utcnow
    from chalicelib.store.datasets import DatasetRepository

    dataset = w.fresh_dataset(whose)
    owner = GLOBAL_SUBS["contributor" if whose == "own" else "other"]
    DatasetRepository().soft_delete(dataset, owner, utcnow(), {})
    return Call(f"{DS}/{dataset}/{action}", unchanged=lambda: _dataset_state(w, dataset) == "deleted")


def _analysis_call(w: GlobalWorld, suffix: str = "") -> Call:
    """An analysis of a registry image, stored as a pipeline's would be (pipelines sign; see below)."""
    from chalicelib.clock import utcnow
    from chalicelib.ids import new_id
    from chalicelib.store.analyses import Analysis, AnalysisRepository

    analysis = Analysis(id=new_id(), image_id=w.images[0], model_name="yolo_v8", model_version="1", parameters={},
                        status="queued", key_id="default", artifacts=[], prediction_count=0, error=None,
                        created_at=utcnow(), updated_at=utcnow())
    AnalysisRepository().create([analysis])
    return Call(f"/api/v1/analyses/{analysis.id}{suffix}")


def _bulk_delete_call(w: GlobalWorld, whose: str) -> Call:
    dataset = w.fresh_dataset(whose)
    return Call(f"{DS}/bulk-delete", {"dataset_ids": [dataset], "confirm": True, "create_backup": False},
                unchanged=lambda: _dataset_state(w, dataset) == "active")


SI = "/api/v1/shared-images"
DS = "/api/v1/datasets"
GLOBAL_ROWS = [
    GlobalRow("GET", "/api/v1/me", "global.read", lambda w, o: Call("/api/v1/me")),
    GlobalRow("GET", "/api/v1/me/mentions", "global.read", lambda w, o: Call("/api/v1/me/mentions")),
    GlobalRow("GET", "/api/v1/operations/{operation_id}", "operations.read",
              lambda w, o: Call(f"/api/v1/operations/{w.operation_of[o]}"), refused=404),
    GlobalRow("POST", "/api/v1/admin/reindex", "images.reindex",
              lambda w, o: Call("/api/v1/admin/reindex", {"prefix": "global/"})),
    GlobalRow("POST", "/api/v1/admin/explore-index/rebuild", "explore_index.rebuild",
              lambda w, o: Call("/api/v1/admin/explore-index/rebuild", {})),
    GlobalRow("GET", SI, "global.read", lambda w, o: Call(SI)),
    GlobalRow("POST", f"{SI}/register", "images.register",
              lambda w, o: Call(f"{SI}/register", {"file_paths": GLOBAL_IMAGES[:1]})),
    GlobalRow("POST", f"{SI}/register", "images.register_all",
              lambda w, o: Call(f"{SI}/register", {"file_paths": [""]}), "root"),
    GlobalRow("GET", f"{SI}/duplicates", "global.read", lambda w, o: Call(f"{SI}/duplicates")),
    GlobalRow("POST", f"{SI}/bulk-tag", "images.tag",
              lambda w, o: Call(f"{SI}/bulk-tag", {"shared_image_ids": w.images[1:], "tag_ids": [w.tag_of["others"]]})),
    GlobalRow("POST", f"{SI}/bulk-untag", "images.tag",
              lambda w, o: Call(f"{SI}/bulk-untag", {"shared_image_ids": w.images[2:], "tag_ids": [w.tag_of["own"]]})),
    GlobalRow("GET", f"{SI}/{{image_id}}", "global.read", lambda w, o: Call(f"{SI}/{w.images[0]}")),
    GlobalRow("PATCH", f"{SI}/{{image_id}}", "images.metadata",
              lambda w, o: Call(f"{SI}/{w.images[0]}", {"metadata": {"checked": True}})),
    GlobalRow("PUT", f"{SI}/{{image_id}}/caption", "images.caption",
              lambda w, o: Call(f"{SI}/{w.images[0]}/caption", {"text": "a cat on a mat"})),
    GlobalRow("DELETE", f"{SI}/{{image_id}}/caption", "images.caption",
              lambda w, o: Call(f"{SI}/{w.images[1]}/caption")),
    GlobalRow("GET", f"{SI}/{{image_id}}/url", "global.read", lambda w, o: Call(f"{SI}/{w.images[0]}/url")),
    GlobalRow("GET", f"{SI}/{{image_id}}/similar", "global.read", lambda w, o: Call(f"{SI}/{w.images[0]}/similar")),
    GlobalRow("GET", f"{SI}/{{image_id}}/masks", "global.read", lambda w, o: Call(f"{SI}/{w.images[0]}/masks")),
    GlobalRow("PUT", f"{SI}/{{image_id}}/mask", "images.masks",
              lambda w, o: Call(f"{SI}/{w.images[2]}/mask", {"source_image_id": w.images[0], "mask_category": "seg"})),
    GlobalRow("POST", f"{SI}/{{image_id}}/tags", "images.tag",
              lambda w, o: Call(f"{SI}/{w.images[1]}/tags", {"tag_ids": [w.tag_of["own"]]})),
    GlobalRow("DELETE", f"{SI}/{{image_id}}/tags/{{tag_id}}", "images.tag",
              lambda w, o: Call(f"{SI}/{w.images[2]}/tags/{w.tag_of['others']}")),
    GlobalRow("POST", "/api/v1/projects", "projects.create",
              lambda w, o: Call("/api/v1/projects", {"name": "Global matrix"})),
    GlobalRow("GET", "/api/v1/projects", "global.read", lambda w, o: Call("/api/v1/projects")),
    GlobalRow("GET", "/api/v1/share/browse", "global.read", lambda w, o: Call("/api/v1/share/browse?path=global")),
    GlobalRow("POST", "/api/v1/share/resolve", "global.read",
              lambda w, o: Call("/api/v1/share/resolve", {"paths": ["global/"]})),
    GlobalRow("POST", "/api/v1/share/upload-urls", "share.upload",
              lambda w, o: Call("/api/v1/share/upload-urls",
                                {"folder": "incoming", "files": [{"path": "u.jpg", "content_type": "image/jpeg",
                                                                  "size": 10}]})),
    GlobalRow("POST", DS, "datasets.create", lambda w, o: Call(DS, {"name": f"dataset {uuid.uuid4()}"})),
    GlobalRow("GET", DS, "global.read", lambda w, o: Call(DS)),
    GlobalRow("GET", f"{DS}/{{dataset_id}}", "datasets.read", lambda w, o: Call(f"{DS}/{w.dataset_of[o]}"),
              refused=404),
    GlobalRow("PATCH", f"{DS}/{{dataset_id}}", "datasets.manage", _patch_dataset, refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/upload-urls", "datasets.manage",
              lambda w, o: Call(f"{DS}/{w.dataset_of[o]}/upload-urls",
                                {"files": [{"path": "u.jpg", "content_type": "image/jpeg", "size": 10}]}), refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/uploads", "datasets.manage",
              lambda w, o: Call(f"{DS}/{w.dataset_of[o]}/uploads", {"file_name": "b.zip", "size": 10}), refused=404),
    GlobalRow("GET", f"{DS}/{{dataset_id}}/uploads/part-urls", "datasets.manage",
              lambda w, o: _upload_call(w, o, "part-urls", query=True), refused=404),
    GlobalRow("GET", f"{DS}/{{dataset_id}}/uploads/parts", "datasets.manage",
              lambda w, o: _upload_call(w, o, "parts", query=True), refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/uploads/complete", "datasets.manage",
              lambda w, o: _upload_call(w, o, "complete", with_part=True), refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/uploads/abort", "datasets.manage",
              lambda w, o: _upload_call(w, o, "abort"), refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/import", "datasets.manage", _import_call, refused=404),
    GlobalRow("GET", f"{DS}/audit", "datasets.audit_all", lambda w, o: Call(f"{DS}/audit")),
    GlobalRow("GET", f"{DS}/{{dataset_id}}/audit", "datasets.read",
              lambda w, o: Call(f"{DS}/{w.dataset_of[o]}/audit"), refused=404),
    GlobalRow("GET", f"{DS}/{{dataset_id}}/uploads", "datasets.read",
              lambda w, o: Call(f"{DS}/{w.dataset_of[o]}/uploads"), refused=404),
    GlobalRow("DELETE", f"{DS}/{{dataset_id}}/uploads/{{file_name}}", "datasets.manage", _delete_staged_call,
              refused=404),
    GlobalRow("GET", f"{DS}/{{dataset_id}}/deletion-impact", "datasets.manage",
              lambda w, o: Call(f"{DS}/{w.dataset_of[o]}/deletion-impact"), refused=404),
    GlobalRow("DELETE", f"{DS}/{{dataset_id}}", "datasets.manage", _delete_dataset_call, refused=404),
    GlobalRow("DELETE", f"{DS}/{{dataset_id}}", "datasets.force_delete",
              lambda w, o: _delete_dataset_call(w, o, force=True), "force"),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/restore", "datasets.manage",
              lambda w, o: _deleted_dataset_call(w, o, "restore"), refused=404),
    GlobalRow("POST", f"{DS}/{{dataset_id}}/purge", "datasets.manage",
              lambda w, o: _deleted_dataset_call(w, o, "purge"), refused=404),
    # Someone else's dataset in a bulk request is refused in its own result, not by the request.
    GlobalRow("POST", f"{DS}/bulk-delete", "datasets.manage", _bulk_delete_call, refused=200),
    GlobalRow("POST", "/api/v1/tags", "tags.create", lambda w, o: Call("/api/v1/tags", {"name": f"new {uuid.uuid4()}"})),
    GlobalRow("GET", "/api/v1/tags", "global.read", lambda w, o: Call("/api/v1/tags")),
    GlobalRow("GET", "/api/v1/tags/{tag_id}", "global.read", lambda w, o: Call(f"/api/v1/tags/{w.tag_of['others']}")),
    GlobalRow("PATCH", "/api/v1/tags/{tag_id}", "tags.update", _patch_tag),
    GlobalRow("DELETE", "/api/v1/tags/{tag_id}", "tags.delete", _delete_tag),
    GlobalRow("DELETE", "/api/v1/tags/{tag_id}", "tags.force_delete", _force_delete_tag, "force"),
    GlobalRow("GET", "/api/v1/images/{image_id}/analyses", "global.read",
              lambda w, o: Call(f"/api/v1/images/{w.images[0]}/analyses")),
    GlobalRow("GET", "/api/v1/analyses/{analysis_id}", "global.read", lambda w, o: _analysis_call(w)),
    GlobalRow("GET", "/api/v1/analyses/{analysis_id}/export", "global.read",
              lambda w, o: _analysis_call(w, "/export?format=csv")),
]
# Who can own what an OWN grant is about: only contributors create tags and operations.
OWNERS = ("contributor",)


def global_cases():
    for row in GLOBAL_ROWS:
        for role in GLOBAL_ROLES:
            allowed = global_grant(role, row.action)
            if allowed is Grant.OWN:
                if role in OWNERS:
                    yield pytest.param(row, role, "own", OK, id=f"{row.id}-{role}-own")
                yield pytest.param(row, role, "others", row.refused, id=f"{row.id}-{role}-others")
            else:
                yield pytest.param(row, role, "others", OK if allowed is Grant.ANY else 403, id=f"{row.id}-{role}")
        yield pytest.param(row, "no-token", "others", 401, id=f"{row.id}-no-token")


def build_global_world(stack, client) -> GlobalWorld:
    from chalicelib.services.container import services

    callers = {name: Api(client, stack.token(sub=sub, email=f"{sub}@example.com", groups=GLOBAL_GROUPS.get(name, [])))
               for name, sub in GLOBAL_SUBS.items()}
    callers["no-token"] = Api(client, None)
    s3 = stack.aws("s3")
    for seed, key in enumerate([*GLOBAL_IMAGES, "elsewhere/one.jpg", "elsewhere/two.jpg"]):
        s3.put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key, Body=picture(64, 48, seed=seed))
    stack.aws("sqs").purge_queue(QueueUrl=stack.physical["IngestQueue"]["QueueUrl"])
    images = [image["id"] for image in created(callers["contributor"].post(
        f"{SI}/register", {"file_paths": GLOBAL_IMAGES}))["registered"]]
    tag_of = {"own": created(callers["contributor"].post("/api/v1/tags", {"name": "mine"}))["id"],
              "others": created(callers["other"].post("/api/v1/tags", {"name": "theirs"}))["id"]}
    # Registrations larger than one request's synchronous limit are operations, owned by their starter.
    settings = services().settings
    services().override(settings=settings.model_copy(update={"register_sync_limit": 1}))
    operation_of = {whose: created(callers[name].post(f"{SI}/register", {"file_paths": ["elsewhere/"]}))["id"]
                    for whose, name in (("own", "contributor"), ("others", "other"))}
    services().override(settings=settings)
    for operation_id in operation_of.values():
        poll(lambda: callers["admin"].get(f"/api/v1/operations/{operation_id}").json["data"]["status"],
             lambda status: status in ("completed", "failed"), f"operation {operation_id}")
    dataset_of = {whose: created(callers[name].post(DS, {"name": f"{whose} dataset"}))["id"]
                  for whose, name in (("own", "contributor"), ("others", "other"))}
    return GlobalWorld(callers=callers, images=images, tag_of=tag_of,
                       operation_of=operation_of, dataset_of=dataset_of)


@pytest.fixture(scope="module")
def global_world(local_stack):
    from chalice.test import Client

    local_stack.reset()
    with Client(local_stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield build_global_world(local_stack, client)


def test_the_global_matrix_covers_every_global_route_and_every_action(local_stack):
    from chalicelib.api.routing import ROUTES

    assert local_stack.app is not None
    global_routes = {(route.method, route.path) for route in ROUTES
                     if not route.public and not route.pipeline and not route.path.startswith((P, J))}
    assert {(row.method, row.route) for row in GLOBAL_ROWS} == global_routes
    assert {row.action for row in GLOBAL_ROWS} == set(GLOBAL_RULES)


@pytest.mark.parametrize(("row", "caller", "whose", "expected"), global_cases())
def test_global_role_matrix(global_world, row, caller, whose, expected):
    # Given a request on a global resource (made by the caller, or by someone else)
    call = row.build(global_world, whose)
    # When the caller sends it
    response = global_world.callers[caller].request(row.method, call.path, call.body)
    # Then the outcome is the one GLOBAL_RULES gives the caller's global role
    if expected == OK:
        assert 200 <= response.status_code < 300, response.json
    else:
        assert response.status_code == expected, response.json
        if call.unchanged is not None:
            assert call.unchanged(), "a refused request changed its target"


def test_a_viewer_changes_nothing_global(global_world):
    # Given the image a viewer may read
    viewer, admin = global_world.callers["viewer"], global_world.callers["admin"]
    image = created(admin.get(f"{SI}/{global_world.images[1]}"))
    # When the viewer tries to tag it, patch it and make it a mask
    refused = [viewer.post(f"{SI}/{image['id']}/tags", {"tag_ids": [global_world.tag_of["own"]]}),
               viewer.patch(f"{SI}/{image['id']}", {"metadata": {"by": "viewer"}}),
               viewer.request("PUT", f"{SI}/{image['id']}/mask", {"source_image_id": global_world.images[0],
                                                                  "mask_category": "x"})]
    # Then each is 403 naming the role, and the image is as it was
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all("'viewer'" in r.json["error"]["message"] for r in refused)
    after = created(admin.get(f"{SI}/{image['id']}"))
    assert (after["tags"], after["metadata"], after["mask_of"]) == (image["tags"], image["metadata"], image["mask_of"])


# Pipeline routes (HMAC, docs/analyses.md): no caller's token opens them, a valid signature does.

PIPELINE_SECRET = "matrix-pipeline-secret"


def _signed(route: str, method: str, world: GlobalWorld) -> tuple[str, bytes, dict]:
    import time

    from chalicelib.services.pipelines import sign

    path = route.replace("{image_id}", world.images[0]).replace("{analysis_id}", str(uuid.uuid4()))
    body = b"{}"
    stamp = str(int(time.time()))
    return path, body, {"Content-Type": "application/json", "X-ML-Timestamp": stamp,
                        "X-ML-Signature": sign(PIPELINE_SECRET, stamp, method, path, "", body)}


def test_pipeline_routes_take_a_valid_signature_and_no_token(global_world):
    from chalicelib.api.routing import ROUTES
    from chalicelib.services.container import services

    settings = services().settings
    services().override(settings=settings.model_copy(update={
        "ml_analysis_enabled": True, "ml_callback_hmac_secret": PIPELINE_SECRET, "ml_allowed_models": "yolo_v8"}))
    try:
        pipeline_routes = [route for route in ROUTES if route.pipeline]
        assert len(pipeline_routes) >= 6
        for route in pipeline_routes:
            path, body, headers = _signed(route.path, route.method, global_world)
            # Every caller's token, even an administrator's, is refused
            for caller in ("admin", "contributor", "viewer", "no-token"):
                response = global_world.callers[caller].request(route.method, path, raw=body)
                assert response.status_code == 401, (route.path, caller, response.json)
            # A valid signature passes authentication (what follows is the route's own answer)
            signed = global_world.callers["no-token"].request(route.method, path, raw=body, headers=headers)
            assert signed.status_code not in (401, 403), (route.path, signed.json)
    finally:
        services().override(settings=settings)
