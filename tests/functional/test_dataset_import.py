"""Dataset imports through the API and the `import` state machine on the embedded stack: a ZIP (or
loose files) uploaded straight to S3, then `POST …/import` → 202 and an operation to poll; the
dataset, its project, tasks, annotations (confirmed, frozen as version 1) and registry records
are checked afterwards. Refusals write nothing; a run killed half-way and run again converges."""
from __future__ import annotations

import io
import json
import stat
import zipfile

import pytest
import requests

from chalicelib.services.container import services
from tests.conftest import Api, wait_for
from tests.imagefiles import picture

D = "/api/v1/datasets"


def data(response, status: int = 200):
    assert response.status_code == status, response.json
    return response.json["data"]


def make_zip(members: dict[str, bytes], *, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as archive:
        for name, body in members.items():
            archive.writestr(name, body)
    return buffer.getvalue()


def upload(api: Api, dataset: str, file_name: str, body: bytes) -> None:
    """The README's flow: start a multipart upload, PUT each part to its URL, complete."""
    started = data(api.post(f"{D}/{dataset}/uploads", {"file_name": file_name, "size": len(body)}), 201)
    parts = []
    for part in started["parts"]:
        start = (part["part_number"] - 1) * started["part_size"]
        sent = requests.put(part["url"], data=body[start:start + started["part_size"]], timeout=30)
        assert sent.status_code == 200, sent.text
        parts.append({"part_number": part["part_number"], "etag": sent.headers["ETag"]})
    data(api.post(f"{D}/{dataset}/uploads/complete",
                  {"file_name": file_name, "upload_id": started["upload_id"], "parts": parts}))


def new_dataset(api: Api, name: str = "street") -> str:
    return data(api.post(D, {"name": name}), 201)["id"]


def run_import(api: Api, dataset: str, chunk_size: int = 100) -> dict:
    started = data(api.post(f"{D}/{dataset}/import", {"chunk_size": chunk_size}), 202)
    assert started["kind"] == "import_dataset"
    return wait_for(api, started["id"], timeout=120)


def share_keys(dataset: str) -> list[str]:
    return sorted(info.key for page in services().share_bucket.walk(f"datasets/{dataset}/") for info in page)


def coco(files: list[tuple[str, int, int]], boxes: list[tuple[int, int, list[float]]], *,
         segmentation: dict[int, list] | None = None, categories=((1, "cat"), (2, "dog"))) -> bytes:
    return json.dumps({
        "info": {"description": "test"}, "licenses": [],
        "images": [{"id": n + 1, "file_name": name, "width": w, "height": h} for n, (name, w, h) in enumerate(files)],
        "annotations": [{"id": n + 1, "image_id": image, "category_id": category, "bbox": bbox, "iscrowd": 0,
                         "area": bbox[2] * bbox[3], **({"segmentation": segmentation[n + 1]}
                                                      if segmentation and n + 1 in segmentation else {})}
                        for n, (image, category, bbox) in enumerate(boxes)],
        "categories": [{"id": i, "name": name} for i, name in categories],
    }).encode()


def job_annotations(api: Api, project: str) -> dict[str, list[dict]]:
    """file path → the confirmed annotations of every job of every task of the project."""
    found: dict[str, list[dict]] = {}
    for task in data(api.get(f"/api/v1/projects/{project}/tasks")):
        for job in data(api.get(f"/api/v1/projects/{project}/tasks/{task['id']}/jobs")):
            for image in data(api.get(f"/api/v1/jobs/{job['id']}"))["images"]:
                got = data(api.get(f"/api/v1/jobs/{job['id']}/images/{image['image_id']}/annotations"))
                found[image["file_path"]] = got["annotations"]
    return found


# What is imported ---------------------------------------------------------------------------------

def test_a_zip_with_nested_folders_and_coco_becomes_a_project_with_confirmed_frozen_annotations(stack, api):
    dataset = new_dataset(api)
    files = [("images/day/a.jpg", 80, 60), ("images/day/b.jpg", 80, 60), ("images/night/deep/c.png", 64, 48)]
    body = make_zip({
        "images/day/a.jpg": picture(80, 60, seed=1), "images/day/b.jpg": picture(80, 60, seed=2),
        "images/night/deep/c.png": picture(64, 48, seed=3, fmt="PNG"), "README.txt": b"hello",
        "annotations/instances_default.json": coco(
            files, [(1, 1, [10, 10, 20, 20]), (1, 2, [30, 5, 40, 50]), (3, 1, [0, 0, 10, 10])],
            segmentation={3: [[0, 0, 10, 0, 10, 10, 0, 10]]}),
    })
    upload(api, dataset, "street.zip", body)
    # When it is imported
    operation = run_import(api, dataset, chunk_size=2)
    # Then the operation completed with the seed's summary
    assert operation["status"] == "completed", operation
    summary = operation["result"]
    assert summary["upload_summary"]["images_uploaded"] == 3
    assert summary["upload_summary"]["annotations_imported"] == 3
    assert summary["upload_summary"]["folder_structure"] == {"images/day": 2, "images/night/deep": 1}
    assert summary["upload_summary"]["storage_bytes"]["other"] == 5
    assert summary["problems"] == []
    # and the dataset shows it
    detail = data(api.get(f"{D}/{dataset}"))
    assert (detail["status"], detail["image_count"], detail["annotation_count"], detail["labeled"]) == (
        "ready", 3, 3, True)
    assert [(f["path"], f["image_count"]) for f in detail["folders"]] == [("images/day", 2), ("images/night/deep", 1)]
    assert detail["storage"]["other_bytes"] == 5 and detail["storage"]["images_bytes"] > 0
    assert detail["project_id"] == summary["project_id"]
    assert detail["imports"][0]["status"] == "completed" and detail["imports"][0]["operation_id"] == operation["id"]
    # and the files are in the share under the dataset's prefix, folders kept; the staged ZIP is gone
    assert share_keys(dataset) == [f"datasets/{dataset}/{name}" for name in (
        "README.txt", "annotations/instances_default.json", "images/day/a.jpg", "images/day/b.jpg",
        "images/night/deep/c.png")]
    assert list(services().documents_bucket.walk(f"uploads/{dataset}/")) in ([], [[]])
    # and the project has the categories as labels, one task cut into jobs of 2
    project = data(api.get(f"/api/v1/projects/{summary['project_id']}"))
    assert project["name"] == "street"
    assert sorted((label["name"], label["annotation_type"]) for label in project["labels"]) == [
        ("cat", "any"), ("dog", "bbox")]
    (task,) = data(api.get(f"/api/v1/projects/{project['id']}/tasks"))
    assert (task["total_images"], task["job_count"], task["split"]) == (3, 2, "none")
    # and each image's annotations are stored confirmed, with the geometry of the file
    stored = job_annotations(api, project["id"])
    prefix = f"datasets/{dataset}/"
    a = stored[prefix + "images/day/a.jpg"]
    assert sorted((x["label"], x["type"], x["state"], x.get("bbox")) for x in a) == [
        ("cat", "bbox", "confirmed", [10, 10, 20, 20]), ("dog", "bbox", "confirmed", [30, 5, 40, 50])]
    (c,) = stored[prefix + "images/night/deep/c.png"]
    assert (c["type"], c["points"]) == ("polygon", [[0, 0], [10, 0], [10, 10], [0, 10]])
    assert stored[prefix + "images/day/b.jpg"] == []
    # and every job is frozen as version 1, "imported"
    for job in data(api.get(f"/api/v1/projects/{project['id']}/tasks/{task['id']}/jobs")):
        versions = data(api.get(f"/api/v1/jobs/{job['id']}/versions"))
        assert [(v["number"], v["note"]) for v in versions] == [(1, "imported")]
    # and the dataset's audit log says who created it and who imported what; the feed of every
    # dataset is for administrators
    audit = data(api.get(f"{D}/{dataset}/audit"))
    assert [(e["action"], e["actor"]) for e in audit] == [("uploaded", "alice"), ("created", "alice")]
    assert audit[0]["details"]["images"] == 3 and audit[0]["details"]["operation_id"] == operation["id"]
    assert api.get(f"{D}/audit").status_code == 403
    # and the images are registry images, each registered once (the S3 events found them current)
    images = data(api.get(f"/api/v1/shared-images?folder=datasets/{dataset}&page_size=100"))
    assert sorted(i["file_path"].removeprefix(prefix) for i in images) == [
        "images/day/a.jpg", "images/day/b.jpg", "images/night/deep/c.png"]
    assert all(i["status"] == "ready" and i["width"] for i in images)


def test_images_uploaded_alone_are_imported_into_a_project_without_labels(stack, api):
    dataset = new_dataset(api, "loose")
    for n in range(3):
        services().share_bucket.put(f"datasets/{dataset}/shots/{n}.jpg", picture(40, 30, seed=n), "image/jpeg")
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    assert operation["result"]["upload_summary"]["images_uploaded"] == 3
    assert operation["result"]["upload_summary"]["annotations_imported"] == 0
    detail = data(api.get(f"{D}/{dataset}"))
    assert (detail["status"], detail["image_count"], detail["labeled"]) == ("ready", 3, False)
    project = data(api.get(f"/api/v1/projects/{detail['project_id']}"))
    assert project["labels"] == []
    (task,) = data(api.get(f"/api/v1/projects/{project['id']}/tasks"))
    assert task["total_images"] == 3


def test_coco_train_and_val_files_make_one_task_per_split(stack, api):
    dataset = new_dataset(api, "splits")
    names = [f"img/{n}.jpg" for n in range(4)]
    members = {name: picture(50, 40, seed=n) for n, name in enumerate(names)}
    members["annotations/instances_train.json"] = coco([(n, 50, 40) for n in names[:3]],
                                                       [(1, 1, [1, 1, 10, 10]), (2, 2, [5, 5, 10, 10])])
    members["annotations/instances_val.json"] = coco([(names[3], 50, 40)], [(1, 1, [2, 2, 8, 8])])
    upload(api, dataset, "splits.zip", make_zip(members))
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    tasks = data(api.get(f"/api/v1/projects/{operation['result']['project_id']}/tasks"))
    assert sorted((t["split"], t["total_images"]) for t in tasks) == [("train", 3), ("val", 1)]


# Refused, nothing written ---------------------------------------------------------------------------

def _zip_with_link() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("ok.jpg", picture(20, 20))
        link = zipfile.ZipInfo("link.jpg")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(link, "/etc/passwd")
    return buffer.getvalue()


def _zip_encrypted() -> bytes:
    body = bytearray(make_zip({"ok.jpg": picture(20, 20), "secret.jpg": picture(20, 20, seed=2)},
                              compression=zipfile.ZIP_STORED))
    # Set the "encrypted" flag of the second member in its local header and central directory entry.
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        at = body.find(signature, body.find(signature) + 1)
        body[at + offset] |= 0x1
    return bytes(body)


def _zip_bomb() -> bytes:
    return make_zip({"ok.jpg": picture(20, 20), "bomb.bin": b"\0" * (20 << 20)})


REFUSALS = {
    "zip slip": (lambda: make_zip({"ok.jpg": picture(20, 20), "../../escape.jpg": picture(20, 20)}),
                 "../../escape.jpg", "escapes"),
    "absolute name": (lambda: make_zip({"ok.jpg": picture(20, 20), "/etc/x.jpg": picture(20, 20)}),
                      "/etc/x.jpg", "absolute"),
    "symlink": (_zip_with_link, "link.jpg", "symbolic link"),
    "nested zip": (lambda: make_zip({"ok.jpg": picture(20, 20), "inner.zip": make_zip({"a.jpg": b"x"})}),
                   "inner.zip", "nested archive"),
    "duplicate names": (lambda: make_zip({"ok.jpg": picture(20, 20), "OK.jpg": picture(20, 20, seed=3)}),
                        "OK.jpg", "case-insensitive"),
    "encrypted member": (_zip_encrypted, "secret.jpg", "encrypted"),
    "zip bomb": (_zip_bomb, "bomb.bin", "zip bomb"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_an_unsafe_archive_is_refused_naming_the_member_and_nothing_is_written(stack, api, case):
    make, member, reason = REFUSALS[case]
    dataset = new_dataset(api, f"refused {case}")
    upload(api, dataset, "bad.zip", make())
    operation = run_import(api, dataset)
    assert operation["status"] == "failed"
    assert member in operation["error"] and reason in operation["error"], operation["error"]
    detail = data(api.get(f"{D}/{dataset}"))
    assert detail["status"] == "failed" and detail["image_count"] == 0 and detail["project_id"] is None
    (history,) = detail["imports"]
    assert any(p.get("member") == member and reason in p["reason"] for p in history["problems"]), history
    assert share_keys(dataset) == []
    assert data(api.get(f"/api/v1/shared-images?folder=datasets/{dataset}")) == []


def test_the_seeds_broken_coco_is_refused_with_a_clear_message_and_nothing_is_written(stack, api):
    dataset = new_dataset(api, "broken")
    names = ["photos/cat.jpg", "photos/dog.jpg", "photos/owl.jpg"]
    members = {name: picture(40, 30, seed=n) for n, name in enumerate(names)}
    members["coco.json"] = coco([("1", 40, 30), ("2", 40, 30), ("3", 40, 30)], [(1, 1, [1, 1, 5, 5])])
    upload(api, dataset, "broken.zip", make_zip(members))
    operation = run_import(api, dataset)
    assert operation["status"] == "failed"
    assert "coco.json" in operation["error"] and "'1', '2', '3'" in operation["error"], operation["error"]
    assert share_keys(dataset) == []
    assert data(api.get(f"{D}/{dataset}"))["status"] == "failed"


def test_a_refused_archive_stays_staged_until_removed_then_the_import_runs(stack, api):
    dataset = new_dataset(api, "retry")
    upload(api, dataset, "bad.zip", make_zip({"ok.jpg": picture(20, 20), "../x.jpg": picture(20, 20)}))
    upload(api, dataset, "good.zip", make_zip({"ok/1.jpg": picture(20, 20, seed=9)}))
    assert run_import(api, dataset)["status"] == "failed"
    staged = data(api.get(f"{D}/{dataset}/uploads"))
    assert sorted(item["file_name"] for item in staged) == ["bad.zip", "good.zip"]
    removed = data(api.delete(f"{D}/{dataset}/uploads/bad.zip"))
    assert removed["file_name"] == "bad.zip" and removed["size"] > 0
    assert api.delete(f"{D}/{dataset}/uploads/bad.zip").status_code == 404
    again = run_import(api, dataset)
    assert again["status"] == "completed", again
    assert share_keys(dataset) == [f"datasets/{dataset}/ok/1.jpg"]
    assert data(api.get(f"{D}/{dataset}/uploads")) == []


# API errors ------------------------------------------------------------------------------------------

def test_import_mistakes_are_4xx_naming_the_problem(stack, api):
    empty = new_dataset(api, "empty")
    nothing = api.post(f"{D}/{empty}/import", {})
    assert nothing.status_code == 422 and "nothing to import" in nothing.json["error"]["message"]
    bad_json = new_dataset(api, "bad json")
    upload(api, bad_json, "labels.json", b"{not json")
    refused = api.post(f"{D}/{bad_json}/import", {})
    assert refused.status_code == 400 and "labels.json" in refused.json["error"]["message"]
    unknown = new_dataset(api, "unknown")
    upload(api, unknown, "labels.json", b'{"some": "thing"}')
    refused = api.post(f"{D}/{unknown}/import", {})
    assert refused.status_code == 400 and "not an annotation file we read" in refused.json["error"]["message"]
    assert api.post(f"{D}/{empty}/import", {"chunk_size": 0}).status_code == 422
    # nothing started: the datasets have no import in their history
    assert all(data(api.get(f"{D}/{d}"))["imports"] == [] for d in (empty, bad_json, unknown))


# Other formats ---------------------------------------------------------------------------------------

def test_a_dice_file_uploaded_beside_the_images_is_imported(stack, api):
    dataset = new_dataset(api, "dice")
    for n in range(2):
        services().share_bucket.put(f"datasets/{dataset}/cam/{n}.jpg", picture(60, 40, seed=n), "image/jpeg")
    # The seed's DICE: COCO arrays without info/licenses; category_id is the label's name (no categories)
    dice = {"images": [{"id": 1, "file_name": "cam/0.jpg"}, {"id": 2, "file_name": "cam/1.jpg"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": "car", "bbox": [5, 5, 20, 10]},
                            {"id": 2, "image_id": 2, "category_id": "bus", "bbox": [0, 0, 70, 10]}]}
    upload(api, dataset, "labels.json", json.dumps(dice).encode())
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    result = operation["result"]
    assert result["upload_summary"]["annotation_format"] == "dice"
    assert result["upload_summary"]["annotations_imported"] == 1
    # the bus box runs 10 px past the 60 px image: reported with its file and reason, never dropped silently
    (problem,) = result["problems"]
    assert problem["file"] == "labels.json" and problem["annotation"] == "2" and "runs past" in problem["reason"]
    stored = job_annotations(api, result["project_id"])
    assert [a["bbox"] for a in stored[f"datasets/{dataset}/cam/0.jpg"]] == [[5, 5, 20, 10]]
    # without `categories`, the labels are the names the imported annotations carry
    assert [label["name"] for label in data(api.get(f"/api/v1/projects/{result['project_id']}"))["labels"]] == [
        "car"]


def _yolo_zip(layout: str) -> bytes:
    members = {}
    for n, split in enumerate(("train", "train", "val")):
        stem = f"frame{n}"
        image = picture(100, 50, seed=n)
        line = f"{n % 2} 0.500000 0.500000 0.200000 0.400000\n"
        if layout == "ultralytics":
            members[f"images/{split}/{stem}.jpg"] = image
            members[f"labels/{split}/{stem}.txt"] = line.encode()
        else:
            members[f"obj_train_data/{stem}.jpg"] = image
            members[f"obj_train_data/{stem}.txt"] = line.encode()
    if layout == "ultralytics":
        members["data.yaml"] = b"path: .\ntrain: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n"
    else:
        members["obj.names"] = b"cat\ndog\n"
        members["train.txt"] = b"obj_train_data/frame0.jpg\nobj_train_data/frame1.jpg\n"
        members["valid.txt"] = b"obj_train_data/frame2.jpg\n"
    return make_zip(members)


@pytest.mark.parametrize("layout", ["ultralytics", "darknet"])
def test_yolo_in_both_layouts_is_imported_with_boxes_in_pixels_and_splits(stack, api, layout):
    dataset = new_dataset(api, f"yolo {layout}")
    upload(api, dataset, "yolo.zip", _yolo_zip(layout))
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    result = operation["result"]
    assert (result["upload_summary"]["annotation_format"], result["upload_summary"]["annotations_imported"]) == (
        "yolo" if layout == "ultralytics" else "darknet", 3)
    assert result["problems"] == []
    tasks = data(api.get(f"/api/v1/projects/{result['project_id']}/tasks"))
    assert sorted((t["split"], t["total_images"]) for t in tasks) == [("train", 2), ("val", 1)]
    stored = job_annotations(api, result["project_id"])
    boxes = sorted((path.rsplit("/", 1)[-1], a["label"], a["bbox"]) for path, shapes in stored.items() for a in shapes)
    # class cx cy w h = 0.5 0.5 0.2 0.4 of a 100x50 image: x 40, y 15, 20 x 20
    assert boxes == [("frame0.jpg", "cat", [40, 15, 20, 20]), ("frame1.jpg", "dog", [40, 15, 20, 20]),
                     ("frame2.jpg", "cat", [40, 15, 20, 20])]


# Round trip ---------------------------------------------------------------------------------------------

def _export(stack, api, project: str, body: dict) -> zipfile.ZipFile:
    from tests.functional.test_exports import artifact, finished

    base = f"/api/v1/projects/{project}"
    created = api.post(f"{base}/exports", body)
    assert created.status_code == 202, created.json
    done = finished(api, base, created.json["data"]["id"])
    assert done["status"] == "completed", done
    return artifact(stack, api, base, done["id"])


def test_coco_imported_then_exported_gives_the_same_images_categories_and_geometry(stack, api, tmp_path):
    from pycocotools.coco import COCO

    dataset = new_dataset(api, "round trip")
    files = [("set/a.jpg", 120, 80), ("set/sub/b.jpg", 90, 60)]
    original = coco(files, [(1, 1, [10.5, 20.25, 30, 40]), (1, 2, [0, 0, 50, 50]), (2, 2, [5, 5, 80, 50])],
                    categories=((1, "cat"), (2, "dog")))
    upload(api, dataset, "rt.zip", make_zip({"set/a.jpg": picture(120, 80, seed=1),
                                             "set/sub/b.jpg": picture(90, 60, seed=2),
                                             "instances_train.json": original}))
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    archive = _export(stack, api, operation["result"]["project_id"], {"export_mode": "detection"})
    (tmp_path / "out.json").write_bytes(archive.read("annotations.json"))
    (tmp_path / "in.json").write_bytes(original)
    before, after = COCO(str(tmp_path / "in.json")), COCO(str(tmp_path / "out.json"))
    prefix = f"datasets/{dataset}/"

    def shapes(document: COCO, strip: str) -> set:
        names = {c["id"]: c["name"] for c in document.loadCats(document.getCatIds())}
        images = {i["id"]: (i["file_name"].removeprefix(strip), i["width"], i["height"])
                  for i in document.loadImgs(document.getImgIds())}
        return {(images[a["image_id"]], names[a["category_id"]], tuple(round(v, 2) for v in a["bbox"]))
                for a in document.loadAnns(document.getAnnIds())}

    assert sorted(c["name"] for c in after.loadCats(after.getCatIds())) == ["cat", "dog"]
    assert {i["file_name"].removeprefix(prefix) for i in after.loadImgs(after.getImgIds())} == {"set/a.jpg",
                                                                                              "set/sub/b.jpg"}
    assert shapes(after, prefix) == shapes(before, "")


def test_yolo_imported_then_exported_gives_the_same_layout_and_labels(stack, api):
    dataset = new_dataset(api, "yolo round trip")
    source = zipfile.ZipFile(io.BytesIO(_yolo_zip("ultralytics")))
    upload(api, dataset, "yolo.zip", _yolo_zip("ultralytics"))
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    archive = _export(stack, api, operation["result"]["project_id"],
                      {"export_mode": "detection", "output_format": "yolo", "options": {"include_images": True}})
    labels = sorted(name for name in source.namelist() if name.startswith(("images/", "labels/")))
    assert sorted(name for name in archive.namelist() if name.startswith(("images/", "labels/"))) == labels
    for name in labels:
        if name.startswith("labels/"):
            assert archive.read(name) == source.read(name), name
        else:
            assert archive.read(name) == source.read(name), name  # the very bytes
    assert "names:\n  0: cat\n  1: dog\n" in archive.read("data.yaml").decode()


# Killed half-way and run again ---------------------------------------------------------------------------

def test_an_import_killed_half_way_and_run_again_converges_with_nothing_twice(stack, api):
    sfn = stack.aws("stepfunctions")
    members = {f"p/{n}.jpg": picture(40, 30, seed=n) for n in range(5)}
    members["coco.json"] = coco([(f"p/{n}.jpg", 40, 30) for n in range(5)],
                                [(n % 5 + 1, 1 + n % 2, [1, 1, 5 + n, 5]) for n in range(8)])
    body = make_zip(members)
    # Given a clean import, for reference
    clean = new_dataset(api, "clean")
    upload(api, clean, "d.zip", body)
    reference = run_import(api, clean, chunk_size=2)
    assert reference["status"] == "completed", reference
    # And an import killed after its images were extracted: the project step and the failure report
    # both fail for good, so nothing records the end (as when an execution is stopped)
    killed = new_dataset(api, "killed")
    upload(api, killed, "d.zip", body)
    lambdas = stack.emulator.lambdas
    lambdas.fail("ProjectImport", "InjectedPermanentError", after_running=True, times=10)
    lambdas.fail("FailImport", "InjectedPermanentError", after_running=False, times=10)
    try:
        started = data(api.post(f"{D}/{killed}/import", {"chunk_size": 2}), 202)
        arn = stack.variables["PIXELPOOL_IMPORT_STATE_MACHINE"].replace(":stateMachine:", ":execution:")
        from tests.conftest import poll

        poll(lambda: sfn.describe_execution(executionArn=f"{arn}:import-{started['id']}")["status"],
             lambda status: status != "RUNNING", "the killed import", 120)
    finally:
        lambdas.clear_faults()
    assert data(api.get(f"{D}/{killed}"))["status"] == "importing"
    # When it is run again
    again = run_import(api, killed, chunk_size=2)
    # Then it completes as the clean one did, with each image and annotation once
    assert again["status"] == "completed", again
    assert again["result"]["upload_summary"] == reference["result"]["upload_summary"]
    detail = data(api.get(f"{D}/{killed}"))
    assert [entry["status"] for entry in detail["imports"]] == ["completed", "failed"]
    assert (detail["image_count"], detail["annotation_count"]) == (5, 8)

    def relative(dataset: str) -> dict:
        project = data(api.get(f"{D}/{dataset}"))["project_id"]
        stored = job_annotations(api, project)
        tasks = data(api.get(f"/api/v1/projects/{project}/tasks"))
        return {"tasks": [(t["name"], t["total_images"], t["job_count"]) for t in tasks],
                "annotations": {path.split("/", 2)[2]: sorted((a["label"], a["bbox"]) for a in shapes)
                                for path, shapes in stored.items()},
                "images": sorted(i["file_path"].split("/", 2)[2] for i in data(
                    api.get(f"/api/v1/shared-images?folder=datasets/{dataset}&page_size=100")))}

    mine, theirs = relative(killed), relative(clean)
    assert mine["images"] == theirs["images"] and len(mine["images"]) == 6 - 1
    assert mine["annotations"] == theirs["annotations"]
    assert [(jobs, count) for _, jobs, count in mine["tasks"]] == [(5, 3)]


def test_the_summary_names_duplicates_of_registered_images_and_broken_images_as_problems(stack, api):
    # Given an image already in the registry elsewhere in the share
    known = picture(50, 50, seed=42)
    stack.aws("s3").put_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="elsewhere/known.jpg",
                               Body=known)
    stack.pump.drain()
    dataset = new_dataset(api, "dups")
    upload(api, dataset, "d.zip", make_zip({"x/same.jpg": known, "x/twin1.jpg": picture(30, 30, seed=5),
                                            "x/twin2.jpg": picture(30, 30, seed=5), "x/new.jpg": picture(30, 30, seed=6),
                                            "x/broken.jpg": b"\xff\xd8 not really a jpeg"}))
    operation = run_import(api, dataset)
    assert operation["status"] == "completed", operation
    result = operation["result"]
    # progress counts the archive's members
    assert (operation["done"], operation["total"], operation["progress"]) == (5, 5, 1.0)
    assert result["upload_summary"]["images_uploaded"] == 4
    # Then the copy of the registered image and the two identical files are duplicates
    assert {tuple(d["paths"]): d["registered_at"] for d in result["duplicates"]} == {
        ("x/same.jpg",): ["elsewhere/known.jpg"], ("x/twin1.jpg", "x/twin2.jpg"): []}
    # and the broken file is a problem naming it, and a failed registry record (never ready)
    assert [(p["file"], p["reason"] != "") for p in result["problems"]] == [("x/broken.jpg", True)]
    assert result["failed_images"] == 1
    detail = data(api.get(f"{D}/{dataset}"))
    # and the folders count the images that are images, in the summary as in the dataset
    assert detail["image_count"] == 4 and [(f["path"], f["image_count"]) for f in detail["folders"]] == [("x", 4)]
    assert result["upload_summary"]["folder_structure"] == {"x": 4}


def test_a_second_import_adds_only_the_new_images_in_a_task_of_their_own(stack, api):
    dataset = new_dataset(api, "grows")
    upload(api, dataset, "one.zip", make_zip({"a/1.jpg": picture(30, 30, seed=1), "a/2.jpg": picture(30, 30, seed=2)}))
    first = run_import(api, dataset)
    assert first["status"] == "completed", first
    upload(api, dataset, "two.zip", make_zip({"b/3.jpg": picture(30, 30, seed=3)}))
    second = run_import(api, dataset)
    assert second["status"] == "completed", second
    assert second["result"]["project_id"] == first["result"]["project_id"]
    tasks = data(api.get(f"/api/v1/projects/{first['result']['project_id']}/tasks"))
    assert sorted((t["name"], t["total_images"]) for t in tasks) == [("grows", 2), ("grows (import 2)", 1)]
    detail = data(api.get(f"{D}/{dataset}"))
    assert detail["image_count"] == 3 and [e["status"] for e in detail["imports"]] == ["completed", "completed"]


def test_annotations_for_images_an_earlier_import_tasked_are_reported_not_counted(stack, api):
    dataset = new_dataset(api, "corrected")
    files = [("a/1.jpg", 30, 30)]
    upload(api, dataset, "one.zip", make_zip({"a/1.jpg": picture(30, 30, seed=1),
                                              "coco.json": coco(files, [(1, 1, [1, 1, 5, 5])])}))
    assert run_import(api, dataset)["status"] == "completed"
    # When a corrected file comes alone and is imported
    upload(api, dataset, "fixed.json", coco(files, [(1, 1, [2, 2, 6, 6])]))
    again = run_import(api, dataset)
    # Then nothing is counted as imported, the problem says why, and the stored box is the first one
    assert again["status"] == "completed", again
    assert again["result"]["upload_summary"]["annotations_imported"] == 0
    (problem,) = again["result"]["problems"]
    assert (problem["file"], problem["image"]) == ("fixed.json", "a/1.jpg") and "earlier import" in problem["reason"]
    stored = job_annotations(api, again["result"]["project_id"])
    assert [a["bbox"] for a in stored[f"datasets/{dataset}/a/1.jpg"]] == [[1, 1, 5, 5]]
    assert data(api.get(f"{D}/{dataset}"))["annotation_count"] == 1
