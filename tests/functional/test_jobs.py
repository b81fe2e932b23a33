"""Jobs: listing a task's jobs and a job's images, the status workflow (new → in_progress → review →
done, review → in_progress), assignment, who may change what, concurrent status changes (over real
HTTP) and the activity entries every change leaves."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import boto3
import pytest
import requests

from tests.conftest import Api
from tests.imagefiles import picture, real

ROOT = Path(__file__).resolve().parents[2]
LABELS = [{"name": "cat", "annotation_type": "bbox"}, {"name": "outline", "annotation_type": "polygon"},
          {"name": "indoor", "annotation_type": "classification"}, {"name": "any", "annotation_type": "any"}]
SIZES = {"jobs/a.jpg": (200, 100), "jobs/b.jpg": (120, 80), "jobs/c.png": (64, 48), "jobs/d.jpg": (640, 427)}


def task_of(stack, api, files: dict[str, bytes], chunk_size: int = 2) -> tuple[str, dict]:
    """A project with LABELS and a task of `files` (put in the share, registered on the way)."""
    s3 = stack.aws("s3")
    for key, data in files.items():
        s3.put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key, Body=data)
    project = api.post("/api/v1/projects", {"name": "Pets", "labels": LABELS})
    assert project.status_code == 201, project.json
    project_id = project.json["data"]["id"]
    created = api.post(f"/api/v1/projects/{project_id}/tasks/create-with-file-paths",
                       {"name": "Batch 1", "chunk_size": chunk_size, "file_paths": list(files)})
    assert created.status_code == 201, created.json
    return project_id, created.json["data"]


def one_job(stack, api) -> tuple[str, str]:
    """A project and the id of the one job of its one-image task."""
    project_id, created = task_of(stack, api, {"jobs/a.jpg": picture(200, 100, seed=1)})
    return project_id, created["jobs"][0]["id"]


def four_images() -> dict[str, bytes]:
    return {"jobs/a.jpg": picture(200, 100, seed=1), "jobs/b.jpg": picture(120, 80, seed=2),
            "jobs/c.png": picture(64, 48, seed=3, fmt="PNG"), "jobs/d.jpg": real("rocket.jpg")}


def member(client, stack, project_id: str, owner, sub: str, role: str) -> Api:
    user = Api(client, stack.token(sub=sub, email=f"{sub}@example.com", groups=[]))
    user.get("/api/v1/projects")  # known once seen
    added = owner.post(f"/api/v1/projects/{project_id}/members", {"user_id": sub, "role": role})
    assert added.status_code == 201, added.json
    return user


def job_activity(api, project_id: str) -> list[dict]:
    entries = api.get(f"/api/v1/projects/{project_id}/activity?page_size=200").json["data"]
    return [entry for entry in entries if entry["entity_type"] == "job"]


def test_jobs_are_listed_in_order_with_their_images_in_sequence(stack, api):
    # Given a task of four images cut into jobs of two, plus one odd image
    files = {**four_images(), "jobs/e.jpg": picture(90, 90, seed=5)}
    project_id, created = task_of(stack, api, files)
    task_id = created["task"]["id"]
    # When listing the task's jobs
    listed = api.get(f"/api/v1/projects/{project_id}/tasks/{task_id}/jobs")
    # Then they come in sequence order with their sizes
    assert listed.status_code == 200, listed.json
    jobs = listed.json["data"]
    assert [(job["sequence_number"], job["total_images"], job["status"]) for job in jobs] == \
        [(0, 2, "new"), (1, 2, "new"), (2, 1, "new")]
    assert [job["id"] for job in jobs] == [job["id"] for job in created["jobs"]]
    # When reading the second job
    job = api.get(f"/api/v1/jobs/{jobs[1]['id']}")
    # Then its images are in sequence order, with sizes, thumbnails and no annotations yet
    assert job.status_code == 200, job.json
    detail = job.json["data"]
    assert (detail["task_name"], detail["annotated_images"]) == ("Batch 1", 0)
    images = detail["images"]
    assert [(image["sequence_number"], image["file_path"]) for image in images] == \
        [(0, "jobs/c.png"), (1, "jobs/d.jpg")]
    assert [(image["width"], image["height"]) for image in images] == [SIZES["jobs/c.png"], SIZES["jobs/d.jpg"]]
    assert all(image["thumbnail_url"] for image in images)
    assert [(image["annotation_count"], image["is_annotated"]) for image in images] == [(0, False), (0, False)]


def test_a_job_counts_its_annotated_images(stack, api):
    # Given the first job of a task
    _, created = task_of(stack, api, four_images())
    job_id = created["jobs"][0]["id"]
    images = api.get(f"/api/v1/jobs/{job_id}").json["data"]["images"]
    # When the second image gets two annotations
    saved = api.request("PUT", f"/api/v1/jobs/{job_id}/images/{images[1]['image_id']}/annotations",
                        {"annotations": [{"type": "bbox", "label": "cat", "bbox": [1, 1, 10, 10]},
                                         {"type": "classification", "label": "indoor"}]})
    assert saved.status_code == 200, saved.json
    # Then the job shows it annotated and the first one not
    detail = api.get(f"/api/v1/jobs/{job_id}").json["data"]
    assert [(image["annotation_count"], image["is_annotated"]) for image in detail["images"]] == \
        [(0, False), (2, True)]
    assert detail["annotated_images"] == 1


def test_status_follows_the_workflow_and_each_change_is_in_the_activity(stack, api):
    # Given a new job
    project_id, job_id = one_job(stack, api)
    path = [("new", "in_progress"), ("in_progress", "review"), ("review", "in_progress"),
            ("in_progress", "review"), ("review", "done")]
    # When it moves along the workflow, including back from review
    for _, target in path:
        moved = api.patch(f"/api/v1/jobs/{job_id}", {"status": target})
        assert moved.status_code == 200, moved.json
        assert moved.json["data"]["status"] == target
    # Then it is done, and each move is in the activity, newest first, saying from → to
    assert api.get(f"/api/v1/jobs/{job_id}").json["data"]["status"] == "done"
    entries = [entry for entry in job_activity(api, project_id) if entry["action"] == "status_changed"]
    assert [(entry["details"]["from"], entry["details"]["to"]) for entry in entries] == path[::-1]
    assert all(entry["entity_id"] == job_id and entry["actor"] == "alice" for entry in entries)
    assert [entry["summary"].split(": ")[-1] for entry in entries] == [f"{a} → {b}" for a, b in path[::-1]]


@pytest.mark.parametrize(("route", "target", "allowed"), [
    ([], "review", "in_progress"),
    ([], "done", "in_progress"),
    (["in_progress"], "new", "review"),
    (["in_progress"], "done", "review"),
    (["in_progress", "review"], "new", "done, in_progress"),
    (["in_progress", "review", "done"], "in_progress", "none"),
    (["in_progress", "review", "done"], "review", "none"),
    (["in_progress", "review", "done"], "new", "none"),
])
def test_a_move_off_the_workflow_is_refused_naming_the_allowed_states(stack, api, route, target, allowed):
    # Given a job brought along `route`
    project_id, job_id = one_job(stack, api)
    for status in route:
        assert api.patch(f"/api/v1/jobs/{job_id}", {"status": status}).status_code == 200
    before = api.get(f"/api/v1/jobs/{job_id}").json["data"]["status"]
    # When asked to move to `target`
    refused = api.patch(f"/api/v1/jobs/{job_id}", {"status": target})
    # Then 409 names the allowed states, and nothing changed or was logged
    assert refused.status_code == 409, refused.json
    assert refused.json["error"]["code"] == "conflict"
    assert f"(allowed: {allowed})" in refused.json["error"]["message"]
    assert api.get(f"/api/v1/jobs/{job_id}").json["data"]["status"] == before
    assert len([e for e in job_activity(api, project_id) if e["action"] == "status_changed"]) == len(route)


@pytest.mark.parametrize("route", [[], ["in_progress"], ["in_progress", "review"]])
def test_setting_the_current_status_again_is_a_conflict(stack, api, route):
    # Given a job in some state
    _, job_id = one_job(stack, api)
    for status in route:
        assert api.patch(f"/api/v1/jobs/{job_id}", {"status": status}).status_code == 200
    current = (route or ["new"])[-1]
    # When asked to move to where it is
    again = api.patch(f"/api/v1/jobs/{job_id}", {"status": current})
    # Then 409
    assert again.status_code == 409, again.json
    assert "already" in again.json["error"]["message"]


def test_assigning_a_member_is_recorded_and_a_non_member_is_refused(client, stack, api):
    # Given a job, a member bob and a known user mallory who is not a member
    project_id, created = task_of(stack, api, four_images())
    job_id = created["jobs"][0]["id"]
    member(client, stack, project_id, api, "bob", "annotator")
    Api(client, stack.token(sub="mallory", groups=[])).get("/api/v1/projects")
    # When the job is assigned to bob
    assigned = api.patch(f"/api/v1/jobs/{job_id}", {"assignee_id": "bob"})
    # Then it is his, and the activity says so
    assert assigned.status_code == 200, assigned.json
    assert assigned.json["data"]["assignee_id"] == "bob"
    entry, = [e for e in job_activity(api, project_id) if e["action"] == "assigned"]
    assert (entry["entity_id"], entry["details"]["from"], entry["details"]["to"]) == (job_id, None, "bob")
    assert "assigned to bob" in entry["summary"]
    # When assigned to mallory
    refused = api.patch(f"/api/v1/jobs/{job_id}", {"assignee_id": "mallory"})
    # Then 422 on the field, and bob keeps it
    assert refused.status_code == 422, refused.json
    assert [detail["field"] for detail in refused.json["error"]["details"]] == ["assignee_id"]
    assert api.get(f"/api/v1/jobs/{job_id}").json["data"]["assignee_id"] == "bob"
    assert len([e for e in job_activity(api, project_id) if e["action"] == "assigned"]) == 1


def test_an_annotator_moves_only_their_own_job_and_a_viewer_none(client, stack, api):
    # Given bob (annotator) assigned the first job, carol a viewer, the second job unassigned
    project_id, created = task_of(stack, api, four_images())
    mine, other = created["jobs"][0]["id"], created["jobs"][1]["id"]
    bob = member(client, stack, project_id, api, "bob", "annotator")
    carol = member(client, stack, project_id, api, "carol", "viewer")
    assert api.patch(f"/api/v1/jobs/{mine}", {"assignee_id": "bob"}).status_code == 200
    # When bob starts his job
    started = bob.patch(f"/api/v1/jobs/{mine}", {"status": "in_progress"})
    # Then it moves
    assert started.status_code == 200, started.json
    assert started.json["data"]["status"] == "in_progress"
    # But bob may not reassign it, nor read or move a job not his
    assert bob.patch(f"/api/v1/jobs/{mine}", {"assignee_id": "carol"}).status_code == 403
    assert bob.patch(f"/api/v1/jobs/{other}", {"status": "in_progress"}).status_code == 403
    assert bob.get(f"/api/v1/jobs/{other}").status_code == 403
    # And carol may read but not move either
    assert carol.get(f"/api/v1/jobs/{mine}").status_code == 200
    assert carol.patch(f"/api/v1/jobs/{mine}", {"status": "review"}).status_code == 403
    assert carol.patch(f"/api/v1/jobs/{other}", {"status": "in_progress"}).status_code == 403
    # Then only bob's start was applied and logged
    assert api.get(f"/api/v1/jobs/{mine}").json["data"]["assignee_id"] == "bob"
    assert api.get(f"/api/v1/jobs/{other}").json["data"]["status"] == "new"
    moves = [e for e in job_activity(api, project_id) if e["action"] == "status_changed"]
    assert [(e["entity_id"], e["actor"]) for e in moves] == [(mine, "bob")]


def test_an_annotator_submits_for_review_but_only_an_editor_or_owner_finishes_it(client, stack, api):
    # Given bob (annotator) who submitted his job for review, and dana an editor
    project_id, created = task_of(stack, api, four_images())
    mine = created["jobs"][0]["id"]
    bob = member(client, stack, project_id, api, "bob", "annotator")
    dana = member(client, stack, project_id, api, "dana", "editor")
    assert api.patch(f"/api/v1/jobs/{mine}", {"assignee_id": "bob"}).status_code == 200
    for status in ("in_progress", "review"):
        assert bob.patch(f"/api/v1/jobs/{mine}", {"status": status}).status_code == 200
    # When bob approves his own work, or takes it back from review
    approved = bob.patch(f"/api/v1/jobs/{mine}", {"status": "done"})
    taken_back = bob.patch(f"/api/v1/jobs/{mine}", {"status": "in_progress"})
    # Then both are refused and the job waits for review
    assert (approved.status_code, taken_back.status_code) == (403, 403), (approved.json, taken_back.json)
    assert "jobs review" in approved.json["error"]["message"]
    assert api.get(f"/api/v1/jobs/{mine}").json["data"]["status"] == "review"
    # And the editor sends it back, bob submits again, and the owner approves it
    assert dana.patch(f"/api/v1/jobs/{mine}", {"status": "in_progress"}).status_code == 200
    assert bob.patch(f"/api/v1/jobs/{mine}", {"status": "review"}).status_code == 200
    assert api.patch(f"/api/v1/jobs/{mine}", {"status": "done"}).json["data"]["status"] == "done"


def test_unknown_job_and_non_member_get_404(client, stack, api):
    # Given a job and a stranger who is not a member
    _, created = task_of(stack, api, four_images())
    job_id = created["jobs"][0]["id"]
    stranger = Api(client, stack.token(sub="zed", groups=[]))
    # Then
    assert api.get("/api/v1/jobs/no-such-job").status_code == 404
    assert api.patch("/api/v1/jobs/no-such-job", {"status": "in_progress"}).status_code == 404
    assert stranger.get(f"/api/v1/jobs/{job_id}").status_code == 404
    assert stranger.patch(f"/api/v1/jobs/{job_id}", {"status": "in_progress"}).status_code == 404


# Concurrency, over real HTTP: `python -m infra.local` serves each request on its own thread.

def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served():
    """`make run`'s program in a subprocess: (API base URL, admin token, boto3 S3 client, share bucket)."""
    api_port, emulator_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIXELPOOL_", "AWS_"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "infra.local", "--port", str(api_port), "--emulator-port", str(emulator_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = []
        timer = threading.Timer(60, process.kill)  # a stuck start ends the read loop below
        timer.start()
        for line in process.stdout:
            banner.append(line)
            if line.startswith("Ctrl-C stops"):
                break
        timer.cancel()
        text = "".join(banner)
        assert text.endswith("Ctrl-C stops.\n"), "not ready:\n" + text
        threading.Thread(target=lambda: [None for _ in process.stdout], daemon=True).start()  # keep the pipe drained
        token = re.search(r"admin token\s+(\S+)", text).group(1)
        bucket = re.search(r"ShareBucket\s+(\S+)", text).group(1)
        region = re.search(r"\(region (\S+),", text).group(1)
        s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{emulator_port}", region_name=region,
                          aws_access_key_id="local", aws_secret_access_key="local")
        yield f"http://127.0.0.1:{api_port}", token, s3, bucket
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


def test_of_two_concurrent_status_changes_exactly_one_wins(served):
    base, token, s3, bucket = served

    def call(method: str, path: str, body=None):
        return requests.request(method, f"{base}{path}", json=body, timeout=30,
                                headers={"Authorization": f"Bearer {token}"})

    # Given ten new jobs of one image each
    races = 10
    paths = [f"race/{n:02d}.jpg" for n in range(races)]
    for n, key in enumerate(paths):
        s3.put_object(Bucket=bucket, Key=key, Body=picture(48, 32, seed=100 + n))
    project_id = call("POST", "/api/v1/projects", {"name": "Race", "labels": LABELS}).json()["data"]["id"]
    created = call("POST", f"/api/v1/projects/{project_id}/tasks/create-with-file-paths",
                   {"name": "Race", "chunk_size": 1, "file_paths": paths})
    assert created.status_code == 201, created.text
    jobs = [job["id"] for job in created.json()["data"]["jobs"]]
    assert len(jobs) == races, created.json()["data"]["failed"]
    for job_id in jobs:
        # When two clients start the same job at the same moment
        barrier = threading.Barrier(2)
        answers: list[requests.Response] = []

        def start(job_id=job_id, barrier=barrier, answers=answers):
            barrier.wait()
            answers.append(call("PATCH", f"/api/v1/jobs/{job_id}", {"status": "in_progress"}))

        threads = [threading.Thread(target=start) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # Then exactly one wins, the other gets 409
        assert sorted(answer.status_code for answer in answers) == [200, 409], [a.text for a in answers]
        assert call("GET", f"/api/v1/jobs/{job_id}").json()["data"]["status"] == "in_progress"
    # And each race left exactly one status change in the activity
    entries = call("GET", f"/api/v1/projects/{project_id}/activity?page_size=200").json()["data"]
    moves = [entry["entity_id"] for entry in entries if entry["action"] == "status_changed"]
    assert sorted(moves) == sorted(jobs)
