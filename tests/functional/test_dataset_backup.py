"""A dataset's backup ZIP on the embedded stack: a dataset imported through the API (nested folders,
COCO boxes and a polygon, two splits), two of its images also in another project's task with an
annotation and a frozen version; the backup's steps run a few images a shard. The ZIP holds the
images byte for byte, COCO per split and the metadata; imported into a new dataset it gives the same
images and annotations back; an assemble run again after a crash writes the same ZIP."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest

from chalicelib.formats import dataset_contents
from chalicelib.formats.dataset_contents import File
from chalicelib.services.container import services
from chalicelib.services.datasets import upload_key
from chalicelib.store.objects import Bucket
from tests.functional.test_dataset_import import (coco, data, job_annotations, make_zip, new_dataset, run_import,
                                                  upload)
from tests.imagefiles import picture, real

TRAIN = [("city/day/a.jpg", 80, 60), ("city/day/b.jpg", 80, 60), ("city/night/deep/rocket.jpg", 640, 427)]
VAL = [("fields/chelsea.png", 451, 300), ("fields/c.png", 64, 48)]
OTHER_LABELS = [{"name": "car", "annotation_type": "bbox"}]


def sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def imported_dataset(api) -> tuple[str, dict[str, bytes]]:
    """A dataset imported from a ZIP of six images in nested folders, COCO train and val files with
    boxes and a polygon (one image in neither); its images by relative path."""
    images = {"city/day/a.jpg": picture(80, 60, seed=1), "city/day/b.jpg": picture(80, 60, seed=2),
              "city/night/deep/rocket.jpg": real("rocket.jpg"), "fields/chelsea.png": real("chelsea.png"),
              "fields/c.png": picture(64, 48, seed=3, fmt="PNG"), "loose/coffee.png": real("coffee.png")}
    dataset = new_dataset(api, "street")
    upload(api, dataset, "street.zip", make_zip({
        **images, "README.txt": b"hello",
        "annotations/instances_train.json": coco(
            TRAIN, [(1, 1, [10, 10, 20, 20]), (1, 2, [30, 5, 40, 50]), (3, 1, [100.25, 50.5, 200, 100]),
                    (3, 2, [0, 0, 10, 10])],
            segmentation={4: [[300, 200, 400, 210.75, 350, 300]]}),
        "annotations/instances_val.json": coco(VAL, [(1, 2, [5, 5, 100, 80])]),
    }))
    operation = run_import(api, dataset, chunk_size=2)
    assert operation["status"] == "completed", operation
    return dataset, images


def image_ids(api, dataset: str) -> dict[str, str]:
    """Relative path → registry id of the dataset's images."""
    listed = data(api.get(f"/api/v1/shared-images?folder=datasets/{dataset}&page_size=100"))
    return {image["file_path"].removeprefix(f"datasets/{dataset}/"): image["id"] for image in listed}


def other_project(api, stack, dataset: str) -> tuple[str, str, str]:
    """A second project whose task holds two of the dataset's images and one of its own, with a box on
    `city/day/a.jpg` frozen as version 1; returns the project, its job and that image's id."""
    services().share_bucket.put("elsewhere/x.jpg", picture(50, 40, seed=9), "image/jpeg")
    project = data(api.post("/api/v1/projects", {"name": "Other", "labels": OTHER_LABELS}), 201)["id"]
    paths = [f"datasets/{dataset}/city/day/a.jpg", f"datasets/{dataset}/fields/c.png", "elsewhere/x.jpg"]
    created = data(api.post(f"/api/v1/projects/{project}/tasks/create-with-file-paths",
                            {"name": "Cars", "chunk_size": 10, "file_paths": paths}), 201)
    (job,) = [job["id"] for job in created["jobs"]]
    image = image_ids(api, dataset)["city/day/a.jpg"]
    saved = api.request("PUT", f"/api/v1/jobs/{job}/images/{image}/annotations",
                        {"annotations": [{"type": "bbox", "label": "car", "bbox": [1, 2, 30, 20]}]})
    assert saved.status_code == 200, saved.json
    assert api.post(f"/api/v1/jobs/{job}/versions", {"note": "cars"}).status_code == 201
    return project, job, image


def change_own_annotations(api, own: str) -> None:
    """The own project's current annotations differ from what was imported (version 1): `b.jpg` gets a box."""
    for task in data(api.get(f"/api/v1/projects/{own}/tasks")):
        for job in data(api.get(f"/api/v1/projects/{own}/tasks/{task['id']}/jobs")):
            for image in data(api.get(f"/api/v1/jobs/{job['id']}"))["images"]:
                if image["file_path"].endswith("/city/day/b.jpg"):
                    saved = api.request("PUT", f"/api/v1/jobs/{job['id']}/images/{image['image_id']}/annotations",
                                        {"annotations": [{"type": "bbox", "label": "dog", "bbox": [2, 3, 4, 5]}]})
                    assert saved.status_code == 200, saved.json
                    return
    raise AssertionError("b.jpg is in no job of the own project")


def back_up(dataset: str, project_ids: list[str], operation: str = "op-1") -> dict:
    backup = services().dataset_backup
    backup.shard_size = 2
    shards = backup.prepare(operation, dataset, project_ids)["shards"]
    assert shards == [0, 1, 2]
    for shard in shards:
        backup.build(operation, dataset, shard)
    return backup.assemble(operation, dataset, shards)


def opened(key: str) -> zipfile.ZipFile:
    body, _ = services().documents_bucket.read(key)
    archive = zipfile.ZipFile(io.BytesIO(body))
    assert archive.testzip() is None
    return archive


def normalised(annotations_by_path: dict[str, list[dict]], prefix: str) -> dict[str, list[tuple]]:
    """Path relative to the dataset → its annotations as (label, type, geometry to 2 decimals), sorted."""
    def shape(annotation: dict) -> tuple:
        geometry = annotation.get("bbox") or [v for point in annotation.get("points") or () for v in point]
        return annotation["label"], annotation["type"], tuple(round(float(v), 2) for v in geometry)

    return {path.removeprefix(prefix): sorted(shape(a) for a in found) for path, found in annotations_by_path.items()}


@pytest.fixture
def backed_up(stack, api):
    dataset, images = imported_dataset(api)
    own = data(api.get(f"/api/v1/datasets/{dataset}"))["project_id"]
    change_own_annotations(api, own)
    other, other_job, other_image = other_project(api, stack, dataset)
    return dataset, images, own, other, other_job, other_image


# The ZIP ----------------------------------------------------------------------------------------------

def test_the_backup_holds_the_images_coco_per_split_and_the_metadata_of_every_project(stack, api, backed_up):
    dataset, images, own, other, other_job, other_image = backed_up
    # When the backup's steps run, two images a shard
    result = back_up(dataset, [own, other])
    # Then it is one ZIP in the documents bucket, with counts that match what it holds
    assert result["key"] == f"backups/{dataset}/op-1.zip"
    own_versions = sum(len(data(api.get(f"/api/v1/jobs/{job['id']}/versions")))
                       for task in data(api.get(f"/api/v1/projects/{own}/tasks"))
                       for job in data(api.get(f"/api/v1/projects/{own}/tasks/{task['id']}/jobs")))
    assert (result["images"], result["annotations"], result["versions"], result["projects"]) == (
        6, 5 + 1 + 1, own_versions + 1, 2)  # the import's five (one on b.jpg replaced by one), and the car
    archive = opened(result["key"])
    assert result["size"] == services().documents_bucket.head(result["key"]).size
    names = archive.namelist()
    # and every image at its path, byte for byte, stored
    for path, body in images.items():
        assert archive.read(path) == body
        assert archive.getinfo(path).compress_type == zipfile.ZIP_STORED
    assert "README.txt" not in names
    # and COCO per split of the own project's current annotations, file names as in the ZIP
    train = json.loads(archive.read("annotations/instances_train.json"))
    val = json.loads(archive.read("annotations/instances_val.json"))
    assert archive.getinfo("annotations/instances_train.json").compress_type == zipfile.ZIP_DEFLATED
    assert sorted(image["file_name"] for image in train["images"]) == sorted(path for path, _, _ in TRAIN)
    assert [image["file_name"] for image in val["images"]] == ["fields/c.png", "fields/chelsea.png"]
    by_id = {image["id"]: image["file_name"] for image in train["images"]}
    shapes = sorted((by_id[a["image_id"]], a["bbox"], a["segmentation"]) for a in train["annotations"])
    assert ("city/day/b.jpg", [2, 3, 4, 5], []) in shapes
    assert ("city/night/deep/rocket.jpg", [100.25, 50.5, 200, 100], []) in shapes
    assert ("city/night/deep/rocket.jpg", [300, 200, 100, 100], [[300, 200, 400, 210.75, 350, 300]]) in shapes
    assert len(train["annotations"]) == 5 and len(val["annotations"]) == 1
    unsplit = json.loads(archive.read("annotations/instances_default.json"))  # its task has no split
    assert ([image["file_name"] for image in unsplit["images"]], unsplit["annotations"]) == (["loose/coffee.png"], [])
    # and the metadata: the backup, each project's document, annotation sets and version documents
    about = json.loads(archive.read("pixelpool-backup/backup.json"))
    assert (about["layout"], about["dataset"]["id"], about["own_project_id"], about["projects"]) == (
        1, dataset, own, [own, other])
    assert about["annotations"] == {own: 6, other: 1} and about["images"] == 6
    document = json.loads(archive.read(f"pixelpool-backup/projects/{other}/project.json"))
    assert (document["name"], [(label["name"], label["annotation_type"]) for label in document["labels"]]) == (
        "Other", [("car", "bbox")])
    (task,) = document["tasks"]
    assert (task["name"], task["split"], task["chunk_size"]) == ("Cars", "none", 10)
    (job,) = task["jobs"]
    stored_job = data(api.get(f"/api/v1/jobs/{other_job}"))
    assert (job["id"], job["sequence_number"], job["status"]) == (other_job, 0, stored_job["status"])
    assert sorted(path for _, path, _, _ in job["images"]) == ["city/day/a.jpg", "fields/c.png"]  # not x.jpg
    own_document = json.loads(archive.read(f"pixelpool-backup/projects/{own}/project.json"))
    assert sorted(t["split"] for t in own_document["tasks"]) == ["none", "train", "val"]
    assert sum(len(j["images"]) for t in own_document["tasks"] for j in t["jobs"]) == 6
    def lines(project: str) -> list[bytes]:
        return archive.read(f"pixelpool-backup/projects/{project}/annotations.jsonl").splitlines()

    sets = [json.loads(line) for line in lines(other)]
    assert [(s["job_id"], s["image_id"], s["path"], s["rev"]) for s in sets] == [
        (other_job, other_image, "city/day/a.jpg", 1)]
    assert sets[0]["annotations"][0]["bbox"] == [1, 2, 30, 20]
    own_sets = [json.loads(line) for line in lines(own)]
    assert sorted(s["path"] for s in own_sets) == ["city/day/a.jpg", "city/day/b.jpg", "city/night/deep/rocket.jpg",
                                                   "fields/chelsea.png"]
    versions = [name for name in names if "/versions/" in name]
    assert len(versions) == result["versions"] and all(name.endswith("/v000001.json") for name in versions)
    (car,) = [name for name in versions if name.startswith(f"pixelpool-backup/projects/{other}/")]
    assert car.endswith(f"/{other_job}/v000001.json")
    assert json.loads(archive.read(car))["note"] == "cars"
    # and the work folder is gone; a link downloads the backup
    assert [info for page in services().cache_bucket.walk("operations/op-1/backup/work/") for info in page] == []
    assert f"backups/{dataset}/op-1.zip" in services().dataset_backup.link(result["key"])


# It restores ------------------------------------------------------------------------------------------

def test_the_backup_imported_into_a_new_dataset_gives_the_same_images_and_annotations(stack, api, backed_up):
    dataset, images, own, other, _, _ = backed_up
    result = back_up(dataset, [own, other])
    original = normalised(job_annotations(api, own), f"datasets/{dataset}/")
    # When the ZIP is a new dataset's upload and is imported
    restored = new_dataset(api, "street again")
    documents = services().documents_bucket
    documents.copy_from(documents, result["key"], upload_key(restored, "backup.zip"))
    operation = run_import(api, restored, chunk_size=2)
    # Then the import completes without a problem
    assert operation["status"] == "completed", operation
    assert operation["result"]["problems"] == [] and operation["result"]["upload_summary"]["images_uploaded"] == 6
    # and the new dataset has the same images at the same paths, byte for byte
    share = services().share_bucket
    prefix = f"datasets/{restored}/"
    for path, body in images.items():
        assert sha(share.read(prefix + path)[0]) == sha(body)
    assert sorted(image_ids(api, restored)) == sorted(images)
    # and its project the same annotations per image, the same splits
    project = data(api.get(f"/api/v1/datasets/{restored}"))["project_id"]
    assert normalised(job_annotations(api, project), prefix) == original
    def splits(project_id: str) -> list[tuple[str, int]]:
        return sorted((t["split"], t["total_images"]) for t in data(api.get(f"/api/v1/projects/{project_id}/tasks")))

    assert splits(project) == splits(own) == [("none", 1), ("train", 3), ("val", 2)]
    labels = {label["name"] for label in data(api.get(f"/api/v1/projects/{project}"))["labels"]}
    assert labels == {label["name"] for label in data(api.get(f"/api/v1/projects/{own}"))["labels"]}


# Run again ---------------------------------------------------------------------------------------------

class CrashAfterTheZip(Bucket):
    """The cache bucket of an assemble that dies once its ZIP is written, before it records its result."""

    def put_json(self, key, document):
        if key.endswith("/backup/result.json"):
            raise RuntimeError("killed")
        super().put_json(key, document)


def test_assemble_run_again_after_a_crash_writes_the_same_zip(stack, api, backed_up):
    dataset, _, own, other, _, _ = backed_up
    backup = services().dataset_backup
    backup.shard_size = 2
    shards = backup.prepare("op-2", dataset, [own, other])["shards"]
    for shard in shards + shards:  # each built twice: a step retried converges
        backup.build("op-2", dataset, shard)
    # Given an assemble killed after its ZIP was written
    services().override(cache_bucket=CrashAfterTheZip(services().settings.cache_bucket))
    with pytest.raises(RuntimeError):
        services().dataset_backup.assemble("op-2", dataset, shards)
    key = f"backups/{dataset}/op-2.zip"
    first = services().documents_bucket.read(key)[0]
    # When it runs again
    services().reset()
    result = services().dataset_backup.assemble("op-2", dataset, shards)
    # Then the ZIP is valid and the same, member for member and byte for byte
    again = services().documents_bucket.read(key)[0]
    assert opened(key).namelist() == zipfile.ZipFile(io.BytesIO(first)).namelist()
    assert sha(again) == sha(first) and result["size"] == len(again)
    # and once recorded, a further run answers the same result without the work folder
    assert services().dataset_backup.assemble("op-2", dataset, shards) == result


# The import skips the metadata folder -----------------------------------------------------------------

def test_the_backup_metadata_folder_is_other_files_for_an_import():
    contents = dataset_contents.sort([File("pixelpool-backup/backup.json", 10), File("a/b.jpg", 5),
                                      File("pixelpool-backup/projects/p/versions/t/j/v000001.json", 3),
                                      File("annotations/instances_train.json", 7)])
    assert [item.name for item in contents.annotation_files] == ["annotations/instances_train.json"]
    assert [item.name for item in contents.other] == ["pixelpool-backup/backup.json",
                                                      "pixelpool-backup/projects/p/versions/t/j/v000001.json"]
    assert [item.name for item in contents.images] == ["a/b.jpg"]
