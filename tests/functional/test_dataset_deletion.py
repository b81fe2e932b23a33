"""Deleting datasets through the API and the `delete-dataset` state machine on the embedded stack:
impact, refusals, the soft delete (hidden everywhere at once) and an exact restore, the purge
(nothing of the dataset left anywhere, nothing of anyone else touched), the retention sweep with an
injected clock, bulk deletion and the audit log."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest
import requests

from chalicelib.clock import utcnow
from chalicelib.errors import NotFoundError
from chalicelib.ids import new_id
from chalicelib.services.container import services
from chalicelib.store.analyses import Analysis, AnalysisRepository, Prediction
from chalicelib.services.registry import thumbnail_key
from chalicelib.store.images import image_id as id_of
from tests.conftest import Api, put_share_object, wait_for
from tests.functional.test_dataset_import import coco, data, make_zip, new_dataset, run_import, upload
from tests.imagefiles import picture

D = "/api/v1/datasets"
P = "/api/v1/projects"
FILES = [("day/a.jpg", 80, 60), ("day/b.jpg", 80, 60), ("night/c.jpg", 64, 48)]


def import_dataset(api: Api, name: str, seed: int) -> tuple[str, str]:
    """A dataset of three photos with COCO boxes, imported: (dataset id, its project id)."""
    dataset = new_dataset(api, name)
    upload(api, dataset, f"{name}.zip", make_zip({
        **{path: picture(w, h, seed=seed + n) for n, (path, w, h) in enumerate(FILES)},
        "annotations/instances_train.json": coco(FILES, [(1, 1, [10, 10, 20, 20]), (2, 2, [5, 5, 30, 30]),
                                                         (3, 1, [0, 0, 10, 10])]),
    }))
    operation = run_import(api, dataset, chunk_size=2)
    assert operation["status"] == "completed", operation
    return dataset, operation["result"]["project_id"]


@dataclass
class World:
    dataset: str
    own: str  # the project the dataset's import made
    other: str  # a project of alice's using two of its images and one image of the share
    kept: str  # another dataset, never deleted
    kept_project: str
    images: list[str]  # the dataset's image ids
    outside: str  # the share image outside any dataset
    tag: str
    task: str
    thumbnails: dict[str, str]  # file name → thumbnail key of the dataset's images


@pytest.fixture
def world(stack, api) -> World:
    return world_of(stack, api)


def world_of(stack, api: Api) -> World:
    dataset, own = import_dataset(api, "street", seed=10)
    kept, kept_project = import_dataset(api, "harbour", seed=40)
    images = [id_of(f"datasets/{dataset}/{path}") for path, _, _ in FILES]
    # the share image outside any dataset has the same bytes as the dataset's first: one thumbnail for both
    put_share_object(stack, "loose/z.jpg", picture(80, 60, seed=10))
    stack.pump.drain()
    outside = id_of("loose/z.jpg")
    other = data(api.post(P, {"name": "mixed", "labels": [{"name": "cat", "annotation_type": "bbox"}]}), 201)["id"]
    data(api.post(f"{P}/{other}/images", {"shared_image_ids": [images[0], images[1], outside]}))
    task = data(api.post(f"{P}/{other}/tasks", {"name": "review", "chunk_size": 2,
                                                 "shared_image_ids": [images[0], outside, images[1]]}), 201)
    first_job = task["jobs"][0]["id"]
    data(api.request("PUT", f"/api/v1/jobs/{first_job}/images/{images[0]}/annotations",
                     {"annotations": [{"type": "bbox", "label": "cat", "bbox": [1, 1, 5, 5], "state": "confirmed"}]}))
    data(api.request("PUT", f"/api/v1/jobs/{first_job}/images/{outside}/annotations",
                     {"annotations": [{"type": "bbox", "label": "cat", "bbox": [2, 2, 5, 5]}]}))
    data(api.post(f"/api/v1/jobs/{first_job}/versions", {"note": "before"}), 201)
    tag = data(api.post("/api/v1/tags", {"name": "sunny"}), 201)["id"]
    data(api.post("/api/v1/shared-images/bulk-tag", {"shared_image_ids": [images[0], images[2], outside],
                                                     "tag_ids": [tag]}))
    records = [data(api.get(f"/api/v1/shared-images/{image}")) for image in images]
    thumbnails = {record["file_path"].rsplit("/", 1)[-1]: thumbnail_key(record["checksum_sha256"])
                  for record in records}
    return World(dataset, own, other, kept, kept_project, images, outside, tag, task["task"]["id"], thumbnails)


def explore(api: Api, project: str, query: str = "") -> list[str]:
    found = data(api.get(f"{P}/{project}/explore?page_size=200{query}"))
    return [image["id"] for image in found["images"]]


def delete(api: Api, dataset: str, name: str, **options):
    return api.request("DELETE", f"{D}/{dataset}", {"confirm_dataset_name": name, **options})


def deleted(api: Api, dataset: str, name: str, require: bool = True, **options) -> dict:
    operation = wait_for(api, data(delete(api, dataset, name, **options), 202)["id"], timeout=120)
    assert operation["status"] == "completed" or not require, operation
    return operation


def answers(api: Api, world: World) -> dict:
    """Everything a user sees of the affected projects, to compare before and after."""
    seen = {}
    for project in (world.own, world.other):
        seen[project, "explore"] = data(api.get(f"{P}/{project}/explore?page_size=200"))
        seen[project, "tasks"] = data(api.get(f"{P}/{project}/tasks"))
        seen[project, "exports"] = data(api.get(f"{P}/{project}/exports"))
        for task in seen[project, "tasks"]:
            for job in data(api.get(f"{P}/{project}/tasks/{task['id']}/jobs")):
                detail = data(api.get(f"/api/v1/jobs/{job['id']}"))
                seen[job["id"]] = detail
                for image in detail["images"]:
                    seen[job["id"], image["image_id"]] = data(api.get(
                        f"/api/v1/jobs/{job['id']}/images/{image['image_id']}/annotations"))
                seen[job["id"], "versions"] = data(api.get(f"/api/v1/jobs/{job['id']}/versions"))
    seen["tag"] = data(api.get(f"/api/v1/tags/{world.tag}"))
    seen["registry"] = data(api.get("/api/v1/shared-images?page_size=200"))
    for image in world.images:
        seen[image] = data(api.get(f"/api/v1/shared-images/{image}"))
    return seen


def strip_urls(value):
    """Presigned URLs carry their signing time; everything else must be equal."""
    if isinstance(value, dict):
        return {key: strip_urls(item) for key, item in value.items() if not str(key).endswith("url")}
    if isinstance(value, list):
        return [strip_urls(item) for item in value]
    return value


def analysis_of(image_id: str, dataset_id: str | None) -> str:
    """An ML analysis of the image, as a pipeline leaves it: one prediction and one artifact."""
    now = utcnow()
    analysis = Analysis(id=new_id(), image_id=image_id, model_name="yolo_v8", model_version="1", parameters={},
                        status="processing", key_id="default", artifacts=[], prediction_count=0, error=None,
                        created_at=now, updated_at=now, dataset_id=dataset_id)
    repository = AnalysisRepository()
    repository.create([analysis])
    repository.add_predictions({analysis.id: [Prediction(
        id=new_id(), annotation_type="classification", class_name="cat", confidence=0.9, data={},
        storage_path=None, created_at=now)]}, "processing", now)
    services().documents_bucket.put(f"ml_outputs/{analysis.id}/heat.png", b"png", "image/png")
    return analysis.id


# Impact -------------------------------------------------------------------------------------------

def test_the_impact_names_every_project_using_the_images_with_counts(world, api):
    impact = data(api.get(f"{D}/{world.dataset}/deletion-impact"))
    assert (impact["images"], impact["annotations"]) == (3, 4)  # 3 imported boxes + 1 in "mixed"
    projects = {project["project_id"]: project for project in impact["projects"]}
    assert set(projects) == {world.own, world.other}
    assert (projects[world.own]["own"], projects[world.own]["action"], projects[world.own]["images"]) == (
        True, "deleted", 3)
    mixed = projects[world.other]
    assert (mixed["name"], mixed["action"], mixed["images"], mixed["annotations"], mixed["tasks"], mixed["jobs"]) == (
        "mixed", "loses images", 2, 1, 1, 2)
    assert impact["annotation_versions"] == 2 + 1  # the import froze each of its 2 jobs; "mixed" froze one
    assert impact["storage_bytes"] == data(api.get(f"{D}/{world.dataset}"))["storage"]["total_bytes"] > 0
    assert impact["needs_force_delete"] is False


# Refusals -----------------------------------------------------------------------------------------

def test_wrong_name_is_400_naming_the_field_and_changes_nothing(world, api):
    refused = delete(api, world.dataset, "Street")
    assert refused.status_code == 400
    assert refused.json["error"]["details"][0]["field"] == "confirm_dataset_name"
    assert data(api.get(f"{D}/{world.dataset}"))["state"] == "active"
    assert world.images[0] in explore(api, world.other)


def test_others_cannot_delete_and_force_is_for_administrators(world, api, client, stack):
    bob = Api(client, stack.token(sub="bob", email="bob@example.com", groups=[]))
    assert delete(bob, world.dataset, "street").status_code == 404
    viewer = Api(client, stack.token(sub="vera", email="vera@example.com", groups=["viewer"]))
    assert delete(viewer, world.dataset, "street").status_code == 403
    forced = delete(api, world.dataset, "street", force_delete=True)
    assert forced.status_code == 403 and "force_delete" in forced.json["error"]["message"]


def test_images_used_by_a_project_the_owner_cannot_manage_need_an_administrators_force(world, api, admin_api, client,
                                                                                     stack):
    bob = Api(client, stack.token(sub="bob", email="bob@example.com", groups=[]))
    project = data(bob.post(P, {"name": "bobs"}), 201)["id"]
    # alice's image is added to bob's project by an administrator
    data(admin_api.post(f"{P}/{project}/images", {"shared_image_ids": [world.images[2]]}))
    refused = delete(api, world.dataset, "street")
    assert refused.status_code == 409 and "bobs" in refused.json["error"]["message"]
    assert data(api.get(f"{D}/{world.dataset}/deletion-impact"))["needs_force_delete"] is True
    operation = deleted(admin_api, world.dataset, "street", force_delete=True, create_backup=False)
    assert operation["result"]["state"] == "deleted"
    assert world.images[2] not in explore(bob, project)


# Soft delete and restore --------------------------------------------------------------------------

def test_a_deleted_dataset_is_hidden_at_once_everywhere_and_restore_brings_back_exactly_what_was(world, api):
    from tests.functional.test_exports import finished

    exported = data(api.post(f"{P}/{world.other}/exports", {"export_mode": "detection"}), 202)
    assert finished(api, f"{P}/{world.other}", exported["id"])["status"] == "completed"
    before = answers(api, world)
    assert len(before[world.other, "exports"]) == 1
    twins = data(api.get("/api/v1/shared-images/duplicates"))
    assert [sorted(image["id"] for image in group["images"]) for group in twins] == [
        sorted([world.images[0], world.outside])]
    operation = deleted(api, world.dataset, "street", create_backup=False)
    result = operation["result"]
    assert (result["dataset_id"], result["dataset_name"], result["state"]) == (world.dataset, "street", "deleted")
    assert result["deletion_summary"]["images_deleted"] == 3 and result["deletion_summary"]["projects_deleted"] == 1
    # Hidden: Explore of every project, the registry list and reads, dataset lists, new tasks
    assert explore(api, world.other) == [world.outside]
    assert explore(api, world.own) == []
    listed = [image["id"] for image in data(api.get("/api/v1/shared-images?page_size=200"))]
    assert not set(world.images) & set(listed) and world.outside in listed
    assert data(api.get("/api/v1/shared-images/duplicates")) == []  # its copy outside has no visible twin
    assert api.get(f"/api/v1/shared-images/{world.images[0]}/similar").status_code == 404
    assert api.get(f"/api/v1/shared-images/{world.images[0]}").status_code == 404
    assert world.dataset not in [d["id"] for d in data(api.get(D))]
    trash = data(api.get(f"{D}?state=deleted"))
    assert [d["id"] for d in trash] == [world.dataset] and trash[0]["restorable_until"]
    refused = api.post(f"{P}/{world.other}/tasks", {"name": "again", "shared_image_ids": [world.images[0]]})
    assert refused.status_code == 422 and "deleted dataset" in refused.json["error"]["message"]
    assert data(api.post(f"{P}/{world.other}/images", {"shared_image_ids": [world.images[2]]}))["unknown"] == [
        world.images[2]]
    # The other dataset is untouched; a deleted dataset takes no change and is not deleted twice
    assert len(explore(api, world.kept_project)) == 3
    assert api.post(f"{D}/{world.dataset}/import", {}).status_code == 409
    again = delete(api, world.dataset, "street")
    assert again.status_code == 409 and "was deleted at" in again.json["error"]["message"]
    # When it is restored, every answer is what it was
    restored = data(api.post(f"{D}/{world.dataset}/restore"))
    assert restored["state"] == "active" and restored["deleted_at"] is None
    assert strip_urls(answers(api, world)) == strip_urls(before)
    assert api.post(f"{D}/{world.dataset}/restore").status_code == 409
    actions = [entry["action"] for entry in data(api.get(f"{D}/{world.dataset}/audit"))]
    assert actions == ["restored", "deleted", "uploaded", "created"]


# Purge --------------------------------------------------------------------------------------------

def dataset_items(stack, world: World) -> dict[str, int]:
    """Every item or object anywhere that still belongs to the dataset's images."""
    aws = stack.aws("dynamodb")
    v = stack.variables
    images = set(world.images)

    def scan(table: str) -> list[dict]:
        items, start = [], None
        while True:
            page = aws.scan(TableName=v[table], **({"ExclusiveStartKey": start} if start else {}))
            items += page["Items"]
            start = page.get("LastEvaluatedKey")
            if not start:
                return items

    def holds(item: dict) -> bool:
        return any(value.get("S") in images or world.dataset in str(value.get("S", ""))
                   for value in item.values() if isinstance(value, dict))

    found = {table: sum(1 for item in scan(table) if holds(item)) for table in (
        "PIXELPOOL_IMAGES_TABLE", "PIXELPOOL_POOL_TABLE", "PIXELPOOL_JOB_IMAGES_TABLE", "PIXELPOOL_ANNOTATIONS_TABLE",
        "PIXELPOOL_IMAGE_TAGS_TABLE")}
    found["projects"] = sum(1 for item in scan("PIXELPOOL_PROJECTS_TABLE") if item["pk"]["S"] == world.own)
    s3 = stack.aws("s3")
    found["share objects"] = s3.list_objects_v2(Bucket=v["PIXELPOOL_SHARE_BUCKET"],
                                                Prefix=f"datasets/{world.dataset}/")["KeyCount"]
    found["version documents"] = len(s3.list_object_versions(
        Bucket=v["PIXELPOOL_DATASETS_BUCKET"], Prefix=f"projects/{world.own}/").get("Versions", []))
    # a.jpg has the bytes of the image outside: its thumbnail is that image's too, and stays
    cache = services().cache_bucket
    found["thumbnails"] = sum(cache.exists(world.thumbnails[name]) for name in ("b.jpg", "c.jpg"))
    found["shared thumbnail gone"] = int(not cache.exists(world.thumbnails["a.jpg"]))
    return found


def test_a_purge_leaves_nothing_of_the_dataset_and_touches_nothing_else(world, api, stack, monkeypatch):
    from chalicelib.services import dataset_purge
    from tests.functional.test_exports import finished

    monkeypatch.setattr(dataset_purge, "SHARE_KEYS_PER_RUN", 2)  # its 4 objects take the objects step 3 runs
    share_keys = sorted(info.key for page in services().share_bucket.walk(f"datasets/{world.dataset}/")
                        for info in page)
    assert len(share_keys) == 4

    kept_before = explore(api, world.kept_project)
    exported = data(api.post(f"{P}/{world.other}/exports", {"export_mode": "detection"}), 202)
    assert finished(api, f"{P}/{world.other}", exported["id"])["status"] == "completed"
    impact = data(api.get(f"{D}/{world.dataset}/deletion-impact"))
    assert [export["export_id"] for export in impact["exports"]] == [exported["id"]]
    # and an ML analysis of one of its images (predictions, an artifact), and one of the image outside
    analyses = {image: analysis_of(image, world.dataset if image != world.outside else None)
                for image in (world.images[1], world.outside)}
    cache = services().cache_bucket
    assert all(cache.exists(key) for key in world.thumbnails.values())
    operation = deleted(api, world.dataset, "street", create_backup=False, purge=True)
    assert (operation["done"], operation["total"]) == (4, 4)  # two projects, the registry, the objects
    summary = operation["result"]["deletion_summary"]
    assert (summary["images_deleted"], summary["annotations_deleted"], summary["projects_deleted"],
            summary["pool_entries_deleted"]) == (3, 4, 1, 5)
    assert summary["storage_bytes_freed"] == impact["storage_bytes"] and summary["s3_keys_deleted_url"]
    manifest = requests.get(summary["s3_keys_deleted_url"], timeout=30).text.splitlines()
    bucket = stack.variables["PIXELPOOL_SHARE_BUCKET"]
    assert [line for line in manifest if line.startswith(f"s3://{bucket}/")] == [f"s3://{bucket}/{key}"
                                                                                 for key in share_keys]
    assert all(count == 0 for count in dataset_items(stack, world).values()), dataset_items(stack, world)
    # thumbnails of the purged images are gone, but the one the share image outside shares
    assert {name: cache.exists(key) for name, key in world.thumbnails.items()} == {
        "a.jpg": True, "b.jpg": False, "c.jpg": False}
    assert data(api.get(f"/api/v1/shared-images/{world.outside}"))["thumbnail_url"]
    # "mixed" keeps its own image, its job and annotation, with counts that add up
    assert explore(api, world.other) == [world.outside]
    # the export that held its images is gone, artifact and all
    assert data(api.get(f"{P}/{world.other}/exports")) == []
    assert list(services().exports_bucket.walk(f"exports/{world.other}/{exported['id']}/")) in ([], [[]])
    task = data(api.get(f"{P}/{world.other}/tasks/{world.task}"))
    assert task["total_images"] == 1
    # its frozen version lost the purged image's entry (2 images → 1), and no earlier bytes of it remain
    job = data(api.get(f"{P}/{world.other}/tasks/{world.task}/jobs"))[0]["id"]
    (version,) = data(api.get(f"/api/v1/jobs/{job}/versions"))
    assert (version["image_count"], version["annotation_count"]) == (1, 1)
    stored = stack.aws("s3").list_object_versions(Bucket=stack.variables["PIXELPOOL_DATASETS_BUCKET"],
                                                  Prefix=f"projects/{world.other}/")
    assert len(stored.get("Versions", [])) == 1
    document = stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_DATASETS_BUCKET"],
                                          Key=stored["Versions"][0]["Key"])["Body"].read().decode()
    assert world.images[0] not in document and world.outside in document
    assert data(api.get(f"/api/v1/tags/{world.tag}"))["usage_count"] == 1
    # its image's analysis is gone with its predictions and artifact; the other image's stays
    repository, documents = AnalysisRepository(), services().documents_bucket
    with pytest.raises(NotFoundError):
        repository.get(analyses[world.images[1]])
    assert repository.of_dataset(world.dataset) == []
    assert stack.aws("s3").list_object_versions(Bucket=stack.variables["PIXELPOOL_DATASETS_BUCKET"],
                                                Prefix=f"ml_outputs/{analyses[world.images[1]]}/").get("Versions") is None
    assert len(repository.predictions(analyses[world.outside])) == 1
    assert documents.exists(f"ml_outputs/{analyses[world.outside]}/heat.png")
    # the other dataset is untouched
    assert explore(api, world.kept_project) == kept_before
    # the dataset record and its audit log stay; restore and delete name the purge
    detail = data(api.get(f"{D}/{world.dataset}"))
    assert detail["state"] == "purged" and detail["purged_at"]
    refused = api.post(f"{D}/{world.dataset}/restore")
    assert refused.status_code == 409 and detail["purged_at"][:19] in refused.json["error"]["message"]
    assert delete(api, world.dataset, "street").status_code == 409
    audit = [(entry["action"], entry["actor"]) for entry in data(api.get(f"{D}/{world.dataset}/audit"))]
    assert audit == [("purged", "alice"), ("deleted", "alice"), ("uploaded", "alice"), ("created", "alice")]
    # its name is free again
    assert api.post(D, {"name": "street"}).status_code == 201


def test_the_retention_sweep_purges_only_what_is_older_than_the_window(world, api, stack):
    deleted(api, world.dataset, "street", create_backup=False)
    deleted_at = services().datasets._datasets.get(world.dataset).deleted_at
    sweep = services().dataset_deletion
    assert sweep.purge_expired(now=deleted_at + timedelta(days=29)) == []
    started = sweep.purge_expired(now=deleted_at + timedelta(days=30, seconds=1))
    assert len(started) == 1
    assert wait_for(api, started[0], timeout=120)["status"] == "completed"
    assert data(api.get(f"{D}/{world.dataset}"))["state"] == "purged"
    assert sweep.purge_expired(now=deleted_at + timedelta(days=60)) == []


def test_bulk_delete_answers_for_each_dataset(world, api):
    refused = api.post(f"{D}/bulk-delete", {"dataset_ids": [world.dataset], "confirm": False})
    assert refused.status_code == 400
    results = data(api.post(f"{D}/bulk-delete", {"dataset_ids": [world.dataset, world.kept, "nope"],
                                                 "confirm": True, "create_backup": False}))
    assert [(r["dataset_id"], r["status"]) for r in results] == [
        (world.dataset, "accepted"), (world.kept, "accepted"), ("nope", "refused")]
    assert results[2]["error"] == "not_found"
    for result in results[:2]:
        assert wait_for(api, result["operation_id"], timeout=120)["status"] == "completed"
    assert data(api.get(D)) == []


# A workflow killed at each step, then run again ---------------------------------------------------

KILLED = "InjectedPermanentError"  # in no Retry: the step's work is done, its answer lost, the run fails


def end_state(stack, api: Api, world: World) -> dict:
    detail = data(api.get(f"{D}/{world.dataset}"))
    summary = detail["deletion"]["summary"]
    return {"state": detail["state"], "left": dataset_items(stack, world), "summary": summary,
            "mixed": explore(api, world.other), "kept": sorted(explore(api, world.kept_project)),
            "tag": data(api.get(f"/api/v1/tags/{world.tag}"))["usage_count"],
            "task": data(api.get(f"{P}/{world.other}/tasks/{world.task}"))["total_images"]}


@pytest.mark.parametrize("function", ["BackupPrepareDataset", "BackupBuildDataset", "BackupAssembleDataset",
                                      "DeletedDataset", "PurgePlanDataset", "PurgeProjectDataset",
                                      "PurgeRegistryDataset", "PurgeObjectsDataset", "PurgeFinishDataset"])
def test_a_deletion_killed_at_any_step_and_run_again_ends_like_one_never_killed(stack, api, client, function):
    # Given the end state of a deletion (backup, then purge) that nothing interrupted
    world = world_of(stack, api)
    deleted(api, world.dataset, "street", create_backup=True, purge=True)
    expected = end_state(stack, api, world)
    expected["kept"] = len(expected["kept"])
    assert all(count == 0 for count in expected["left"].values()) and expected["mixed"] == [world.outside]
    stack.reset()
    # When the same deletion is killed at the step, after it did its work
    world = world_of(stack, api)
    fault = stack.emulator.lambdas.fail(function, KILLED)
    try:
        failed = deleted(api, world.dataset, "street", create_backup=True, purge=True, require=False)
    finally:
        stack.emulator.lambdas.clear_faults()
    assert fault.fired == 1
    state = data(api.get(f"{D}/{world.dataset}"))["state"]
    # and run again: a deletion killed before its purge was undone (deleted again); a purge goes on;
    # a purge killed in its last step was whole, and its operation says so
    assert failed["status"] == ("completed" if state == "purged" else "failed"), failed
    if state == "active":
        deleted(api, world.dataset, "street", create_backup=True, purge=True)
    elif state == "purging":
        started = data(api.post(f"{D}/{world.dataset}/purge"), 202)
        assert wait_for(api, started["id"], timeout=120)["status"] == "completed"
    # Then nothing is left, nothing else was touched, and the summary is the same
    observed = end_state(stack, api, world)
    observed["kept"] = len(observed["kept"])
    assert observed == expected


def test_the_scheduled_sweep_runs_with_the_other_schedules_and_purges_nothing_young(world, api, stack):
    deleted(api, world.dataset, "street", create_backup=False)
    assert stack.scheduler.run_all()["purge_expired_datasets"] == {"operations": []}
    assert data(api.get(f"{D}/{world.dataset}"))["state"] == "deleted"


def test_the_backup_of_a_purged_dataset_imports_back_its_images_and_annotations(world, api):
    from tests.functional.test_dataset_backup import normalised
    from tests.functional.test_dataset_import import job_annotations

    share = services().share_bucket
    images = {path: share.read(f"datasets/{world.dataset}/{path}")[0] for path, _, _ in FILES}
    original = normalised(job_annotations(api, world.own), f"datasets/{world.dataset}/")
    # Given a dataset deleted with a backup and purged
    deleted(api, world.dataset, "street", create_backup=True, purge=True)
    detail = data(api.get(f"{D}/{world.dataset}"))
    assert detail["state"] == "purged" and detail["deletion"]["backup_url"]
    body = requests.get(detail["deletion"]["backup_url"], timeout=30).content
    actions = [entry["action"] for entry in data(api.get(f"{D}/{world.dataset}/audit"))]
    assert actions == ["purged", "backup_created", "deleted", "uploaded", "created"]
    # When the ZIP is uploaded to a new dataset and imported
    again = new_dataset(api, "street restored")
    upload(api, again, "backup.zip", body)
    operation = run_import(api, again, chunk_size=2)
    assert operation["status"] == "completed" and operation["result"]["problems"] == [], operation
    # Then the images are back byte for byte at their paths, and the annotations with them
    for path, before in images.items():
        assert share.read(f"datasets/{again}/{path}")[0] == before
    project = data(api.get(f"{D}/{again}"))["project_id"]
    assert normalised(job_annotations(api, project), f"datasets/{again}/") == original


def test_a_dataset_restored_before_its_purge_starts_is_not_purged(world, api):
    from chalicelib.errors import ConflictError

    started = []
    services().override(start_workflow=lambda machine, name, payload: started.append(payload) or name)
    operation = data(delete(api, world.dataset, "street", create_backup=False, purge=True), 202)
    assert started[0]["operation_id"] == operation["id"]
    # When the owner restores it before the machine reaches the purge
    data(api.post(f"{D}/{world.dataset}/restore"))
    # Then the purge's first step refuses, and nothing is removed
    with pytest.raises(ConflictError):
        services().dataset_deletion.purge_plan(operation["id"])
    assert data(api.get(f"{D}/{world.dataset}"))["state"] == "active"
    assert set(world.images[:2]) <= set(explore(api, world.other))
