"""Annotations of an image in a job: replacing the set, its checks against the label set and the
displayed image frame, optimistic revisions, the done-job lock, and frozen numbered versions (their
S3 documents, concurrent numbering, removal with the task)."""
from __future__ import annotations

import io
import json
import threading

import pytest
from PIL import Image

from tests.imagefiles import picture, real

LABELS = [{"name": "cat", "annotation_type": "bbox"}, {"name": "outline", "annotation_type": "polygon"},
          {"name": "indoor", "annotation_type": "classification"}, {"name": "any", "annotation_type": "any"}]
BOX = {"type": "bbox", "label": "cat", "state": "confirmed", "bbox": [10, 5, 50, 40]}
SHAPE = {"type": "polygon", "label": "outline", "points": [[0, 0], [200, 0], [100, 100]]}
SCENE = {"type": "classification", "label": "indoor", "attributes": {"confidence": 0.9}}


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


def first_job(stack, api) -> tuple[str, str, list[str], list[str]]:
    """Project, first job, its image ids (a 200×100 picture, then the 640×427 rocket), the second job's."""
    files = {"ann/a.jpg": picture(200, 100, seed=1), "ann/b.jpg": real("rocket.jpg"),
             "ann/c.jpg": picture(80, 60, seed=3)}
    project_id, created = task_of(stack, api, files)
    jobs = [job["id"] for job in created["jobs"]]
    images = [[image["image_id"] for image in api.get(f"/api/v1/jobs/{job}").json["data"]["images"]] for job in jobs]
    return project_id, jobs[0], images[0], images[1]


def put(api, job_id: str, image_id: str, annotations: list[dict], **extra):
    return api.request("PUT", f"/api/v1/jobs/{job_id}/images/{image_id}/annotations",
                       {"annotations": annotations, **extra})


def get(api, job_id: str, image_id: str) -> dict:
    answer = api.get(f"/api/v1/jobs/{job_id}/images/{image_id}/annotations")
    assert answer.status_code == 200, answer.json
    return answer.json["data"]


def explored(api, project_id: str, query: str) -> list[str]:
    answer = api.get(f"/api/v1/projects/{project_id}/explore?page_size=100&{query}")
    assert answer.status_code == 200, answer.json
    return [image["id"] for image in answer.json["data"]["images"]]


def documents(stack, prefix: str = "projects/") -> dict[str, dict]:
    s3 = stack.aws("s3")
    bucket = stack.variables["PIXELPOOL_DATASETS_BUCKET"]
    keys = [item["Key"] for item in s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])]
    return {key: json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read()) for key in keys}


def test_a_set_is_saved_replaced_and_cleared(stack, api):
    # Given an image of a job, not annotated
    project_id, job_id, (image_id, _), _ = first_job(stack, api)
    assert get(api, job_id, image_id)["rev"] == 0
    assert image_id in explored(api, project_id, "is_annotated=false")
    # When a bbox, a polygon and a classification are saved
    saved = put(api, job_id, image_id, [BOX, {**SHAPE, "id": "mine"}, SCENE])
    # Then they read back with ids, rev 1 and the author
    assert saved.status_code == 200, saved.json
    current = get(api, job_id, image_id)
    assert (current["rev"], current["is_annotated"], current["updated_by"]) == (1, True, "alice")
    ids = [annotation["id"] for annotation in current["annotations"]]
    assert ids[1] == "mine" and all(ids) and len(set(ids)) == 3
    assert [{k: v for k, v in a.items() if k != "id" and v is not None} for a in current["annotations"]] == \
        [BOX, {**SHAPE, "state": "draft"}, {**SCENE, "state": "draft"}]
    # And Explore and the job see the image annotated
    assert explored(api, project_id, "is_annotated=true") == [image_id]
    job_images = api.get(f"/api/v1/jobs/{job_id}").json["data"]["images"]
    assert [image["annotation_count"] for image in job_images] == [3, 0]
    # When the set is replaced by one box
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    # Then only that box is left, at rev 2
    current = get(api, job_id, image_id)
    assert (current["rev"], len(current["annotations"])) == (2, 1)
    assert api.get(f"/api/v1/jobs/{job_id}").json["data"]["images"][0]["annotation_count"] == 1
    # When the set is emptied
    assert put(api, job_id, image_id, []).status_code == 200
    # Then the image is unannotated again everywhere
    assert (get(api, job_id, image_id)["is_annotated"], get(api, job_id, image_id)["rev"]) == (False, 3)
    assert explored(api, project_id, "is_annotated=true") == []
    assert image_id in explored(api, project_id, "is_annotated=false")
    assert api.get(f"/api/v1/jobs/{job_id}").json["data"]["annotated_images"] == 0


@pytest.mark.parametrize(("bad", "field"), [
    ({"type": "bbox", "label": "dog", "bbox": [0, 0, 5, 5]}, "label"),
    ({"type": "bbox", "label": "outline", "bbox": [0, 0, 5, 5]}, "type"),
    ({"type": "bbox", "label": "cat", "bbox": [150, 0, 51, 10]}, "bbox"),
    ({"type": "bbox", "label": "cat", "bbox": [0, -1, 10, 10]}, "bbox"),
    ({"type": "polygon", "label": "outline", "points": [[0, 0], [201, 50], [0, 100]]}, "points"),
    ({"type": "bbox", "label": "cat", "bbox": [10, 10, 0, 5]}, "bbox"),
    ({"type": "polygon", "label": "outline", "points": [[0, 0], [10, 10]]}, "points"),
    ({"type": "classification", "label": "indoor", "bbox": [0, 0, 5, 5]}, "bbox"),
    ({**BOX, "colour": "red"}, "colour"),
], ids=["unknown-label", "label-of-another-type", "bbox-past-right-edge", "bbox-above-top", "polygon-point-outside",
        "bbox-zero-width", "polygon-two-points", "classification-with-bbox", "unknown-field"])
def test_an_invalid_annotation_is_refused_naming_its_field_and_nothing_is_saved(stack, api, bad, field):
    # Given a 200×100 image with one saved box
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    before = get(api, job_id, image_id)
    # When a set with a valid box and then an invalid annotation is saved
    refused = put(api, job_id, image_id, [BOX, bad])
    # Then 422 names the second annotation's field, and the saved set is unchanged
    assert refused.status_code == 422, refused.json
    assert f"annotations.1.{field}" in [detail["field"] for detail in refused.json["error"]["details"]], \
        refused.json["error"]
    assert get(api, job_id, image_id) == before


@pytest.mark.parametrize("bad", ['{"type": "bbox", "label": "cat", "bbox": [NaN, 0, 10, 10]}',
                                 '{"type": "bbox", "label": "cat", "bbox": [0, 0, 10, Infinity]}'],
                         ids=["nan", "infinity"])
def test_a_coordinate_that_is_not_a_finite_number_is_refused(stack, api, bad):
    # Given an image with one saved box
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    before = get(api, job_id, image_id)
    # When a box with a NaN or infinite coordinate is sent (Python's JSON reader accepts both)
    refused = api.request("PUT", f"/api/v1/jobs/{job_id}/images/{image_id}/annotations",
                          raw=f'{{"annotations": [{json.dumps(BOX)}, {bad}]}}'.encode())
    # Then 422 on its bbox, and the saved set is unchanged
    assert refused.status_code == 422, refused.body
    assert any(d["field"].startswith("annotations.1.bbox") for d in refused.json["error"]["details"])
    assert get(api, job_id, image_id) == before


def test_an_image_outside_the_job_or_an_unknown_job_is_not_found(stack, api):
    # Given an image of the second job
    _, job_id, _, (elsewhere,) = first_job(stack, api)
    # Then the first job does not know it, nor does an unknown job
    assert put(api, job_id, elsewhere, [BOX]).status_code == 404
    assert api.get(f"/api/v1/jobs/{job_id}/images/{elsewhere}/annotations").status_code == 404
    assert put(api, "no-such-job", elsewhere, [BOX]).status_code == 404
    assert api.get(f"/api/v1/jobs/no-such-job/images/{elsewhere}/annotations").status_code == 404


def test_a_stale_expected_rev_is_a_conflict(stack, api):
    # Given a set saved twice (rev 2)
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX], expected_rev=0).status_code == 200
    assert put(api, job_id, image_id, [BOX, SCENE], expected_rev=1).status_code == 200
    # When saved by someone who read rev 1, or nothing at all
    stale = put(api, job_id, image_id, [SHAPE], expected_rev=1)
    blind = put(api, job_id, image_id, [SHAPE], expected_rev=0)
    # Then both are refused and rev 2 stands
    assert (stale.status_code, blind.status_code) == (409, 409), (stale.json, blind.json)
    current = get(api, job_id, image_id)
    assert (current["rev"], [a["type"] for a in current["annotations"]]) == (2, ["bbox", "classification"])


def test_coordinates_are_in_the_displayed_frame_of_a_rotated_photo(stack, api):
    # Given a JPEG stored 200×100 whose EXIF orientation 6 shows it 100×200
    image = Image.open(io.BytesIO(picture(200, 100, seed=7)))
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    _, created = task_of(stack, api, {"ann/rotated.jpg": buffer.getvalue()})
    job_id = created["jobs"][0]["id"]
    shown, = api.get(f"/api/v1/jobs/{job_id}").json["data"]["images"]
    assert (shown["width"], shown["height"]) == (100, 200)
    # When boxes are drawn over the whole displayed and the whole stored frame
    upright = put(api, job_id, shown["image_id"], [{**BOX, "bbox": [0, 0, 100, 200]}])
    sideways = put(api, job_id, shown["image_id"], [{**BOX, "bbox": [0, 0, 200, 100]}])
    # Then only the displayed frame fits
    assert upright.status_code == 200, upright.json
    assert sideways.status_code == 422, sideways.json
    assert get(api, job_id, shown["image_id"])["annotations"][0]["bbox"] == [0, 0, 100, 200]


def test_a_done_job_refuses_changes_until_reopened(stack, api):
    # Given an annotated job moved to done
    _, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    for status in ("in_progress", "review", "done"):
        assert api.patch(f"/api/v1/jobs/{job_id}", {"status": status}).status_code == 200
    # When its annotations are changed
    refused = put(api, job_id, image_id, [SCENE])
    # Then 409 and the box stays
    assert refused.status_code == 409, refused.json
    assert [a["type"] for a in get(api, job_id, image_id)["annotations"]] == ["bbox"]


def test_versions_freeze_the_annotations_as_they_were(stack, api):
    # Given a job with four annotations on two images
    project_id, job_id, (small, rocket), _ = first_job(stack, api)
    assert put(api, job_id, small, [BOX, SHAPE, SCENE]).status_code == 200
    assert put(api, job_id, rocket, [{**BOX, "bbox": [300, 200, 340, 227]}]).status_code == 200
    frozen = {image: [{k: v for k, v in a.items() if v is not None} for a in get(api, job_id, image)["annotations"]]
              for image in (small, rocket)}
    # When version 1 is frozen, the annotations change, and version 2 is frozen
    first = api.post(f"/api/v1/jobs/{job_id}/versions", {"note": "first pass"})
    assert put(api, job_id, small, []).status_code == 200
    assert put(api, job_id, rocket, [SCENE, {**BOX, "label": "any"}]).status_code == 200
    second = api.post(f"/api/v1/jobs/{job_id}/versions", {})
    # Then each is numbered with its counts
    assert (first.status_code, second.status_code) == (201, 201), (first.json, second.json)
    counts = lambda v: (v["number"], v["image_count"], v["annotation_count"])  # noqa: E731
    assert counts(first.json["data"]) == (1, 2, 4)
    assert counts(second.json["data"]) == (2, 1, 2)
    listed = api.get(f"/api/v1/jobs/{job_id}/versions")
    assert [counts(v) for v in listed.json["data"]] == [(1, 2, 4), (2, 1, 2)]
    # And version 1's document still holds the annotations as they were
    prefix = f"projects/{project_id}/tasks/"
    stored = documents(stack, prefix)
    assert len(stored) == 2 and all(f"/jobs/{job_id}/versions/" in key for key in stored)
    v1, = [doc for doc in stored.values() if doc["note"] == "first pass"]
    assert v1["images"] == [{"image_id": image, "rev": 1, "annotations": frozen[image]} for image in sorted(frozen)]
    assert (v1["job_id"], v1["project_id"], v1["created_by"]) == (job_id, project_id, "alice")


def test_concurrent_versions_get_consecutive_numbers(stack, api):
    from chalicelib.services.container import services
    from chalicelib.services.identity import Identity

    # Given an annotated job
    project_id, job_id, (image_id, _), _ = first_job(stack, api)
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    barrier, made, failed = threading.Barrier(4), [], []

    def freeze():
        barrier.wait()
        try:
            made.append(services().annotations.create_version(Identity(sub="alice"), job_id, None).number)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            failed.append(exc)

    # When four callers freeze a version at the same moment
    threads = [threading.Thread(target=freeze) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then they got 1..4, no gap and no duplicate, each with its document and activity entry
    assert failed == []
    assert sorted(made) == [1, 2, 3, 4]
    assert [v["number"] for v in api.get(f"/api/v1/jobs/{job_id}/versions").json["data"]] == [1, 2, 3, 4]
    assert len(documents(stack)) == 4
    entries = api.get(f"/api/v1/projects/{project_id}/activity?page_size=200").json["data"]
    assert sorted(e["details"]["number"] for e in entries if e["action"] == "version_created") == [1, 2, 3, 4]


def test_deleting_the_task_removes_its_annotations_and_versions(stack, api):
    # Given a task with annotations and a version, and another task's version in the same project
    project_id, job_id, (image_id, _), _ = first_job(stack, api)
    task_id = api.get(f"/api/v1/jobs/{job_id}").json["data"]["task_id"]
    assert put(api, job_id, image_id, [BOX]).status_code == 200
    assert api.post(f"/api/v1/jobs/{job_id}/versions", {}).status_code == 201
    other = api.post(f"/api/v1/projects/{project_id}/tasks/create-with-file-paths",
                     {"name": "Batch 2", "chunk_size": 5, "file_paths": ["ann/c.jpg"]}).json["data"]
    assert api.post(f"/api/v1/jobs/{other['jobs'][0]['id']}/versions", {}).status_code == 201
    assert len(documents(stack, f"projects/{project_id}/tasks/{task_id}/")) == 1
    # When the task is deleted
    deleted = api.delete(f"/api/v1/projects/{project_id}/tasks/{task_id}")
    # Then its version documents and annotation items are gone, the other task's version stays
    assert deleted.status_code == 200, deleted.json
    assert documents(stack, f"projects/{project_id}/tasks/{task_id}/") == {}
    assert len(documents(stack, f"projects/{project_id}/tasks/{other['task']['id']}/")) == 1
    items = stack.aws("dynamodb").query(
        TableName=stack.variables["PIXELPOOL_ANNOTATIONS_TABLE"], KeyConditionExpression="job_id = :j",
        ExpressionAttributeValues={":j": {"S": job_id}}, ConsistentRead=True)["Items"]
    assert items == []
    assert api.get(f"/api/v1/jobs/{job_id}/images/{image_id}/annotations").status_code == 404
    assert explored(api, project_id, "is_annotated=true") == []
