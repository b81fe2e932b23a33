"""Tasks through the API: creation from share paths (the seed's workflow: register, pool, cut into
jobs), unusable paths, sequential and seeded random order, assignees, creation from pool ids, a
filter or a saved filter, reading and changing tasks, deletion, the 202 path for large selections
on the emulator's Step Functions, and that a failed creation leaves nothing behind."""
from __future__ import annotations


from tests import imagefiles
from tests.conftest import Api, wait_for
from tests.conftest import put_share_object as put

PROJECTS = "/api/v1/projects"


def project(api, labels=None) -> str:
    response = api.post(PROJECTS, {"name": "Animals", "labels": labels or [{"name": "cat"}]})
    assert response.status_code == 201, response.json
    return response.json["data"]["id"]


def from_paths(api, project_id: str, file_paths: list[str], **settings):
    body = {"name": "T", "chunk_size": 2, "distribution_order": "sequential", **settings, "file_paths": file_paths}
    return api.post(f"{PROJECTS}/{project_id}/tasks/create-with-file-paths", body)


def from_pool(api, project_id: str, **body):
    return api.post(f"{PROJECTS}/{project_id}/tasks", {"name": "T", "chunk_size": 2, **body})


def job_paths(api, job_id: str) -> list[str]:
    return [image["file_path"] for image in api.get(f"/api/v1/jobs/{job_id}").json["data"]["images"]]


def composition(api, created: dict) -> list[list[str]]:
    """The ordered image ids of each job of a just-created task."""
    return [[image["image_id"] for image in api.get(f"/api/v1/jobs/{job['id']}").json["data"]["images"]]
            for job in created["jobs"]]


def explored(api, project_id: str, query: str = "") -> list[dict]:
    return api.get(f"{PROJECTS}/{project_id}/explore?page_size=200{query}").json["data"]["images"]


def tasks_of(api, project_id: str) -> list[dict]:
    return api.get(f"{PROJECTS}/{project_id}/tasks").json["data"]


def cats(stack) -> list[str]:
    """The seed's share: two files and a folder of three images (listed in key order)."""
    keys = ["datasets/cats/img1.jpg", "datasets/cats/img2.jpg", "datasets/cats/folder1/b.jpg",
            "datasets/cats/folder1/a.png", "datasets/cats/folder1/deep/c.jpg"]
    for seed, key in enumerate(keys):
        put(stack, key, imagefiles.picture(48, 32, seed=seed, fmt="PNG" if key.endswith(".png") else "JPEG"))
    return keys


def numbered(stack, count: int, folder: str = "many") -> list[str]:
    keys = [f"{folder}/{n:03d}.jpg" for n in range(count)]
    for n, key in enumerate(keys):
        put(stack, key, imagefiles.picture(48, 32, seed=n))
    return keys


# From share paths --------------------------------------------------------------------------------


def test_create_with_file_paths_answers_like_the_seed(stack, api):
    # Given unregistered files and a folder in the share
    cats(stack)
    project_id = project(api)
    # When
    response = from_paths(api, project_id, ["datasets/cats/img1.jpg", "datasets/cats/img2.jpg",
                                            "datasets/cats/folder1/"],
                          name="Cat Detection Task", description="Annotate cats in images")
    # Then
    assert response.status_code == 201, response.json
    assert response.json["message"] == "Task created with 3 job(s) and 5 image(s)"
    data = response.json["data"]
    assert (data["task"]["name"], data["task"]["total_images"], data["task"]["job_count"]) == (
        "Cat Detection Task", 5, 3)
    assert [(job["sequence_number"], job["total_images"]) for job in data["jobs"]] == [(0, 2), (1, 2), (2, 1)]
    assert (data["total_images"], data["duplicate_count"], data["duplicate_filenames"], data["failed"]) == (
        5, 0, [], [])
    # And the images are registered, in the pool, and in the jobs in the given order (folder in key order)
    assert [job_paths(api, job["id"]) for job in data["jobs"]] == [
        ["datasets/cats/img1.jpg", "datasets/cats/img2.jpg"],
        ["datasets/cats/folder1/a.png", "datasets/cats/folder1/b.jpg"],
        ["datasets/cats/folder1/deep/c.jpg"]]
    job = api.get(f"/api/v1/jobs/{data['jobs'][0]['id']}").json["data"]
    assert job["task_name"] == "Cat Detection Task" and job["annotated_images"] == 0
    assert [image["sequence_number"] for image in job["images"]] == [0, 1]
    assert all(image["thumbnail_url"] and image["is_annotated"] is False and image["annotation_count"] == 0
               for image in job["images"])
    assert len(explored(api, project_id)) == 5
    registry = api.get("/api/v1/shared-images?folder=datasets/cats&page_size=200").json["data"]
    assert len(registry) == 5 and {image["registered_by"] for image in registry} == {"alice"}


def test_unusable_paths_are_reported_and_the_good_ones_make_the_task(stack, api):
    # Given a good image, a text file named .jpg, a non-image file, and a missing path
    put(stack, "mixed/good.jpg", imagefiles.picture(seed=1))
    put(stack, "mixed/notes.jpg", imagefiles.text_as_jpeg())
    put(stack, "mixed/readme.txt", b"not an image")
    project_id = project(api)
    # When
    response = from_paths(api, project_id, ["mixed/good.jpg", "mixed/notes.jpg", "mixed/readme.txt",
                                            "mixed/missing.jpg"])
    # Then
    assert response.status_code == 201, response.json
    data = response.json["data"]
    assert data["total_images"] == 1
    failed = {entry["file_path"]: entry["reason"] for entry in data["failed"]}
    assert set(failed) == {"mixed/notes.jpg", "mixed/readme.txt", "mixed/missing.jpg"}
    assert failed["mixed/missing.jpg"] == "not found in the share"
    assert all(reason for reason in failed.values())
    assert (data["duplicate_count"], data["duplicate_filenames"]) == (0, [])
    assert [image["file_path"] for image in explored(api, project_id)] == ["mixed/good.jpg"]


def test_a_folder_holding_an_unsafe_key_makes_a_task_without_it(stack, api):
    # Given a folder with a good image and one whose key climbs out of the share
    put(stack, "tricky/good.jpg", imagefiles.picture(seed=1))
    put(stack, "tricky/z/../../../../tmp/evil.jpg", imagefiles.picture(seed=2))
    project_id = project(api)
    # When a task is made from the folder
    response = from_paths(api, project_id, ["tricky/"])
    # Then the unsafe object is refused with its reason and is nowhere in the project
    assert response.status_code == 201, response.json
    data = response.json["data"]
    failed = {entry["file_path"]: entry["reason"] for entry in data["failed"]}
    assert list(failed) == ["tricky/z/../../../../tmp/evil.jpg"]
    assert failed["tricky/z/../../../../tmp/evil.jpg"].startswith("unsafe object key: ")
    assert [image["file_path"] for image in explored(api, project_id)] == ["tricky/good.jpg"]
    # And naming the key itself is refused at the edge
    assert from_paths(api, project_id, ["tricky/z/../../../../tmp/evil.jpg"]).status_code == 400


def test_paths_that_select_an_image_again_are_duplicates_and_the_image_is_used_once(stack, api):
    # Given a folder of two images
    put(stack, "twice/a.jpg", imagefiles.picture(seed=1))
    put(stack, "twice/b.jpg", imagefiles.picture(seed=2))
    project_id = project(api)
    # When the folder is given, then one of its files, and a file twice
    response = from_paths(api, project_id, ["twice/", "twice/b.jpg", "twice/a.jpg", "twice/a.jpg"])
    # Then each image is in the task once, and the paths that selected it again are the duplicates
    assert response.status_code == 201, response.json
    data = response.json["data"]
    assert data["total_images"] == 2 and data["failed"] == []
    assert data["duplicate_count"] == 3
    assert sorted(data["duplicate_filenames"]) == ["twice/a.jpg", "twice/a.jpg", "twice/b.jpg"]


def test_a_selection_with_nothing_usable_is_422_and_writes_nothing(stack, api):
    # Given only unusable paths
    put(stack, "bad/notes.jpg", imagefiles.text_as_jpeg())
    project_id = project(api)
    # When
    response = from_paths(api, project_id, ["bad/notes.jpg", "bad/missing.jpg", "bad/empty-folder/"])
    # Then
    assert response.status_code == 422, response.json
    assert {detail["file_path"] for detail in response.json["error"]["details"]} == {"bad/notes.jpg",
                                                                                     "bad/missing.jpg"}
    assert tasks_of(api, project_id) == []
    assert explored(api, project_id) == []
    assert all(entry["entity_type"] != "task" for entry in api.get(f"{PROJECTS}/{project_id}/activity").json["data"])


def test_random_order_is_reproducible_from_the_seed(stack, api):
    # Given twelve images
    numbered(stack, 12)
    project_id = project(api)
    # When two tasks are cut with the same seed and one with another
    first = from_paths(api, project_id, ["many/"], chunk_size=5, distribution_order="random", seed=7)
    same = from_paths(api, project_id, ["many/"], chunk_size=5, distribution_order="random", seed=7)
    other = from_paths(api, project_id, ["many/"], chunk_size=5, distribution_order="random", seed=8)
    # Then
    assert first.status_code == same.status_code == other.status_code == 201
    jobs = composition(api, first.json["data"])
    assert [len(job) for job in jobs] == [5, 5, 2]
    assert composition(api, same.json["data"]) == jobs
    assert composition(api, other.json["data"]) != jobs
    # And it is a shuffle of the sequential order, not that order
    in_key_order = composition(api, from_paths(api, project_id, ["many/"], chunk_size=12).json["data"])[0]
    shuffled = sum(jobs, [])
    assert sorted(shuffled) == sorted(in_key_order) and shuffled != in_key_order
    assert first.json["data"]["task"]["seed"] == 7


def test_random_order_without_a_seed_reports_the_one_it_chose(stack, api):
    # Given
    numbered(stack, 12)
    project_id = project(api)
    # When
    chosen = from_paths(api, project_id, ["many/"], chunk_size=4, distribution_order="random").json["data"]
    seed = chosen["task"]["seed"]
    # Then re-creating with that seed gives the same jobs
    assert isinstance(seed, int)
    again = from_paths(api, project_id, ["many/"], chunk_size=4, distribution_order="random", seed=seed)
    assert composition(api, again.json["data"]) == composition(api, chosen)


def test_the_assignee_must_be_a_member_and_gets_every_job(client, stack, api):
    # Given bob is known but not a member
    Api(client, stack.token(sub="bob", groups=[])).get(PROJECTS)
    cats(stack)
    project_id = project(api)
    # When / Then
    refused = from_paths(api, project_id, ["datasets/cats/"], assignee_id="bob")
    assert refused.status_code == 422 and "bob" in refused.json["error"]["message"]
    assert tasks_of(api, project_id) == []
    api.post(f"{PROJECTS}/{project_id}/members", {"user_id": "bob", "role": "annotator"})
    created = from_paths(api, project_id, ["datasets/cats/"], assignee_id="bob").json["data"]
    assert created["task"]["assignee_id"] == "bob"
    assert [job["assignee_id"] for job in created["jobs"]] == ["bob"] * 3


# From the pool -----------------------------------------------------------------------------------


def pooled(stack, api, project_id: str) -> list[str]:
    """Register the seed's cats, pool them; their ids in path order."""
    keys = cats(stack)
    registered = api.post("/api/v1/shared-images/register", {"file_paths": keys}).json["data"]["registered"]
    ids = {image["file_path"]: image["id"] for image in registered}
    ordered = [ids[key] for key in sorted(keys)]
    assert api.post(f"{PROJECTS}/{project_id}/images", {"shared_image_ids": ordered}).status_code == 200
    return ordered


def test_a_task_from_pool_ids_keeps_their_order_and_refuses_ids_outside_the_pool(stack, api):
    # Given
    project_id = project(api)
    ids = pooled(stack, api, project_id)
    put(stack, "other/x.jpg", imagefiles.picture(seed=99))
    outside = api.post("/api/v1/shared-images/register", {"file_paths": ["other/x.jpg"]}).json["data"]
    outside_id = outside["registered"][0]["id"]  # in the registry, not in the pool
    # When
    chosen = [ids[3], ids[0], ids[4]]
    created = from_pool(api, project_id, shared_image_ids=chosen)
    refused = from_pool(api, project_id, shared_image_ids=[ids[1], outside_id, "no-such-image"])
    # Then
    assert created.status_code == 201, created.json
    assert created.json["data"]["task"]["source"] == "pool"
    assert sum(composition(api, created.json["data"]), []) == chosen
    assert refused.status_code == 422
    assert {detail["id"] for detail in refused.json["error"]["details"]} == {outside_id, "no-such-image"}
    assert len(tasks_of(api, project_id)) == 1


def test_a_task_from_a_filter_or_a_saved_filter_takes_the_matching_pool_images(stack, api):
    # Given two of five pool images carry a tag, and a saved filter for it
    project_id = project(api)
    ids = pooled(stack, api, project_id)
    tag = api.post("/api/v1/tags", {"name": "fluffy", "color": "#FFAA00"}).json["data"]["id"]
    assert api.post("/api/v1/shared-images/bulk-tag",
                    {"shared_image_ids": [ids[1], ids[3]], "tag_ids": [tag]}).status_code == 200
    saved = api.post(f"{PROJECTS}/{project_id}/saved-filters", {"name": "fluffy", "filter": {"tag_ids": [tag]}})
    # When
    by_filter = from_pool(api, project_id, filter={"tag_ids": [tag]}, chunk_size=10)
    by_saved = from_pool(api, project_id, saved_filter_id=saved.json["data"]["id"], chunk_size=10)
    nothing = from_pool(api, project_id, filter={"search": "no such name"})
    # Then
    assert by_filter.status_code == 201, by_filter.json
    assert by_filter.json["data"]["task"]["source"] == "filter"
    assert sorted(composition(api, by_filter.json["data"])[0]) == sorted([ids[1], ids[3]])
    assert by_saved.status_code == 201, by_saved.json
    assert sorted(composition(api, by_saved.json["data"])[0]) == sorted([ids[1], ids[3]])
    assert nothing.status_code == 422
    assert from_pool(api, project_id, saved_filter_id="no-such-filter").status_code == 404


def test_exactly_one_source_must_be_given(stack, api):
    project_id = project(api)
    ids = pooled(stack, api, project_id)
    for body in ({}, {"shared_image_ids": ids, "filter": {}}, {"filter": {}, "saved_filter_id": "x"}):
        response = from_pool(api, project_id, **body)
        assert response.status_code == 422, body
        assert "exactly one" in str(response.json["error"])
    assert tasks_of(api, project_id) == []


# Reading, changing and deleting ------------------------------------------------------------------


def test_tasks_are_listed_read_and_changed_with_activity(stack, api):
    # Given two tasks
    project_id = project(api)
    ids = pooled(stack, api, project_id)
    first = from_pool(api, project_id, name="first", shared_image_ids=ids[:3]).json["data"]["task"]
    second = from_pool(api, project_id, name="second", shared_image_ids=ids[3:]).json["data"]["task"]
    # When
    patched = api.patch(f"{PROJECTS}/{project_id}/tasks/{first['id']}",
                        {"name": "renamed", "split": "train", "status": "in_progress"})
    # Then
    assert patched.status_code == 200, patched.json
    assert [task["id"] for task in tasks_of(api, project_id)] == [first["id"], second["id"]]
    task = api.get(f"{PROJECTS}/{project_id}/tasks/{first['id']}").json["data"]
    assert (task["name"], task["split"], task["status"], task["total_images"]) == ("renamed", "train",
                                                                                    "in_progress", 3)
    assert [(job["sequence_number"], job["total_images"]) for job in task["jobs"]] == [(0, 2), (1, 1)]
    listed_jobs = api.get(f"{PROJECTS}/{project_id}/tasks/{first['id']}/jobs").json["data"]
    assert [job["id"] for job in listed_jobs] == [job["id"] for job in task["jobs"]]
    assert api.patch(f"{PROJECTS}/{project_id}/tasks/{first['id']}", {"split": "holdout"}).status_code == 422
    assert api.get(f"{PROJECTS}/{project_id}/tasks/no-such-task").status_code == 404
    entries = [(e["entity_type"], e["action"], e["entity_id"])
               for e in api.get(f"{PROJECTS}/{project_id}/activity").json["data"] if e["entity_type"] == "task"]
    assert entries == [("task", "updated", first["id"]), ("task", "created", second["id"]),
                       ("task", "created", first["id"])]


def test_deleting_a_task_removes_jobs_and_annotations_but_keeps_the_images(stack, api):
    # Given a task with an annotated image
    project_id = project(api)
    ids = pooled(stack, api, project_id)
    created = from_pool(api, project_id, shared_image_ids=ids).json["data"]
    job_id = created["jobs"][0]["id"]
    image_id = composition(api, created)[0][0]
    saved = api.request("PUT", f"/api/v1/jobs/{job_id}/images/{image_id}/annotations", {
        "annotations": [{"type": "bbox", "label": "cat", "state": "confirmed", "bbox": [1, 1, 10, 10]}]})
    assert saved.status_code == 200, saved.json
    assert next(i for i in explored(api, project_id) if i["id"] == image_id)["is_annotated"] is True
    assert [i["id"] for i in explored(api, project_id, "&is_annotated=true")] == [image_id]
    # When
    response = api.delete(f"{PROJECTS}/{project_id}/tasks/{created['task']['id']}")
    # Then
    assert response.status_code == 200, response.json
    assert tasks_of(api, project_id) == []
    for job in created["jobs"]:
        assert api.get(f"/api/v1/jobs/{job['id']}").status_code == 404
    annotations = stack.aws("dynamodb").scan(TableName=stack.variables["PIXELPOOL_ANNOTATIONS_TABLE"])
    assert annotations["Items"] == []
    images = explored(api, project_id)
    assert sorted(image["id"] for image in images) == sorted(ids)
    assert all(image["tasks"] == [] and image["is_annotated"] is False for image in images)
    # And the annotated filter agrees: the pool's annotation count went down with the task
    assert explored(api, project_id, "&is_annotated=true") == []
    assert len(explored(api, project_id, "&is_annotated=false")) == len(ids)
    assert all(api.get(f"/api/v1/shared-images/{image}").status_code == 200 for image in ids)


# Large selections --------------------------------------------------------------------------------


def test_a_large_unregistered_selection_is_created_by_an_operation(stack, api):
    # Given more unregistered images than one request registers (50)
    numbered(stack, 60, folder="large")
    project_id = project(api)
    # When
    response = from_paths(api, project_id, ["large/"], chunk_size=25)
    # Then
    assert response.status_code == 202, response.json
    operation = wait_for(api, response.json["data"]["id"])
    assert operation["status"] == "completed", operation
    result = operation["result"]
    assert (result["total_images"], result["job_count"], result["total_failed"]) == (60, 3, 0)
    task = api.get(f"{PROJECTS}/{project_id}/tasks/{result['task_id']}").json["data"]
    assert (task["total_images"], task["job_count"]) == (60, 3)
    assert [job["total_images"] for job in task["jobs"]] == [25, 25, 10]
    assert job_paths(api, task["jobs"][2]["id"]) == [f"large/{n:03d}.jpg" for n in range(50, 60)]
    assert len(explored(api, project_id)) == 60


def test_a_large_selection_that_fails_leaves_no_task_behind(stack, api):
    # Given 60 paths, none of them in the share: too many to register synchronously
    project_id = project(api)
    # When
    response = from_paths(api, project_id, [f"gone/{n:03d}.jpg" for n in range(60)])
    # Then the operation fails in its last step, and nothing of the task exists
    assert response.status_code == 202, response.json
    operation = wait_for(api, response.json["data"]["id"])
    assert operation["status"] == "failed", operation
    assert "None of the selected paths can be used" in operation["error"]
    assert tasks_of(api, project_id) == []
    assert api.get(f"{PROJECTS}/{project_id}/tasks/{operation['id']}").status_code == 404
    assert explored(api, project_id) == []


def test_a_creation_that_fails_half_way_is_undone(stack, api):
    # Given registered images and a project whose job-image table has gone away (a real AWS
    # failure injected at the emulator: the pool and job writes succeed, the job images do not)
    for n in range(3):
        put(stack, f"half/{n}.jpg", imagefiles.picture(seed=n))
    project_id = project(api)
    dynamodb = stack.aws("dynamodb")
    dynamodb.delete_table(TableName=stack.variables["PIXELPOOL_JOB_IMAGES_TABLE"])
    # When a task is created from them
    response = from_paths(api, project_id, ["half/"])
    # Then the call fails, and no task is visible, and no job or pool entry it wrote is left
    assert response.status_code == 500, response.json
    assert tasks_of(api, project_id) == []
    assert dynamodb.scan(TableName=stack.variables["PIXELPOOL_JOBS_TABLE"])["Items"] == []
    assert dynamodb.scan(TableName=stack.variables["PIXELPOOL_POOL_TABLE"])["Items"] == []
    # And the one trace is the hidden task item, kept because its job images could not be
    # confirmed removed (the table is gone): deleting the task or project later removes the rest
    leftovers = dynamodb.scan(TableName=stack.variables["PIXELPOOL_PROJECTS_TABLE"],
                              FilterExpression="begins_with(sk, :t)",
                              ExpressionAttributeValues={":t": {"S": "TASK#"}})["Items"]
    assert [item["state"]["S"] for item in leftovers] == ["creating"]
    assert api.get(f"{PROJECTS}/{project_id}/tasks/{leftovers[0]['id']['S']}").status_code == 404
    # And the registration it did on the way stays: the registry mirrors the share
    assert api.get("/api/v1/shared-images?search=0.jpg").json["meta"]["total"] == 1


def test_an_image_the_ingest_handler_registers_during_task_creation_is_used(stack, api, monkeypatch):
    # Given objects whose S3 notifications are still queued when the task is created
    from chalicelib.store.images import ImageRepository

    keys = numbered(stack, 3, folder="raced")
    project_id = project(api)
    original = ImageRepository.find_by_keys
    delivered = []

    def then_ingest(self, wanted):
        found = original(self, wanted)
        if not delivered:  # the notifications are handled right after the task read the registry
            delivered.append(stack.pump.drain())
        return found

    monkeypatch.setattr(ImageRepository, "find_by_keys", then_ingest)
    # When the task is created from their paths (its registration finds the records already made)
    created = from_paths(api, project_id, keys)
    # Then every image is in the task, none reported failed
    assert created.status_code == 201, created.json
    assert delivered and created.json["data"]["failed"] == []
    assert created.json["data"]["total_images"] == 3
