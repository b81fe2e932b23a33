"""Exports end to end on the emulator's Step Functions: preview, numbering, the four artifact
layouts of one small hand-checked project, the URL manifest, history, download and deletion, a
failing step, and preview counts against built artifacts for randomized filters."""
from __future__ import annotations

import io
import json
import random
import threading
import time
import urllib.parse
import zipfile

import pytest
from pycocotools.coco import COCO

from tests import imagefiles
from tests.conftest import poll
from tests.conftest import put_share_object as put

PROJECTS = "/api/v1/projects"
LABELS = [{"name": "cat", "annotation_type": "any"}, {"name": "dog", "annotation_type": "any"},
          {"name": "indoor", "annotation_type": "classification"}]
# path: (width, height)
FILES = {"zoo/a.jpg": (100, 50), "zoo/b.jpg": (80, 40), "zoo/night/c.png": (60, 60), "yard/d.jpg": (40, 20)}


class Small:
    """Four images; task "train" holds a, b; task "val" holds c; d is in no task. Tags: category
    "animal" with tags cat (a, c) and dog (b, c); tag "blurry" (d)."""

    def __init__(self, stack, api) -> None:
        self.api = api
        for n, (key, size) in enumerate(FILES.items()):
            put(stack, key, imagefiles.picture(*size, seed=n, fmt="PNG" if key.endswith(".png") else "JPEG"))
        registered = api.post("/api/v1/shared-images/register", {"file_paths": list(FILES)}).json["data"]
        self.ids = {image["file_path"]: image["id"] for image in registered["registered"]}
        self.project = api.post(PROJECTS, {"name": "Zoo", "labels": LABELS}).json["data"]["id"]
        assert api.post(f"{self.base}/images", {"shared_image_ids": list(self.ids.values())}).status_code == 200
        self.tags = {}
        for name, category, paths in (("cat", "animal", ["zoo/a.jpg", "zoo/night/c.png"]),
                                      ("dog", "animal", ["zoo/b.jpg", "zoo/night/c.png"]),
                                      ("blurry", None, ["yard/d.jpg"])):
            tag = api.post("/api/v1/tags", {"name": name, "color": "#112233", "category": category}).json["data"]
            self.tags[name] = tag["id"]
            assert api.post("/api/v1/shared-images/bulk-tag", {
                "shared_image_ids": [self.ids[path] for path in paths], "tag_ids": [tag["id"]]}).status_code == 200
        self.jobs = {}
        for name, paths in (("train", ["zoo/a.jpg", "zoo/b.jpg"]), ("val", ["zoo/night/c.png"])):
            created = api.post(f"{self.base}/tasks", {"name": name, "chunk_size": 10, "split": name,
                                                      "shared_image_ids": [self.ids[p] for p in paths]})
            assert created.status_code == 201, created.json
            for path in paths:
                self.jobs[path] = created.json["data"]["jobs"][0]["id"]
        self.annotate("zoo/a.jpg", [{"type": "bbox", "label": "cat", "bbox": [10, 5, 20, 10]},
                                    {"type": "polygon", "label": "dog", "points": [[0, 0], [40, 0], [40, 20]]},
                                    {"type": "classification", "label": "indoor"}])
        self.annotate("zoo/b.jpg", [{"type": "bbox", "label": "dog", "bbox": [0, 0, 80, 40]}])
        self.annotate("zoo/night/c.png", [{"type": "polygon", "label": "cat",
                                           "points": [[10, 10], [50, 10], [50, 50], [10, 50]]}])

        # Explore order (newest first, then id): the order of every artifact, and COCO's image ids
        explored = api.get(f"{self.base}/explore?page_size=200").json["data"]["images"]
        self.order = [image["file_path"] for image in explored]
        self.number = {path: n + 1 for n, path in enumerate(self.order)}

    def ordered(self, by_path: dict) -> list:
        """`by_path`'s values, flattened in Explore order."""
        return [value for path in self.order for value in by_path.get(path, [])]

    @property
    def base(self) -> str:
        return f"{PROJECTS}/{self.project}"

    def annotate(self, path: str, annotations: list[dict]) -> None:
        response = self.api.request("PUT", f"/api/v1/jobs/{self.jobs[path]}/images/{self.ids[path]}/annotations",
                                    {"annotations": annotations})
        assert response.status_code == 200, response.json


@pytest.fixture
def small(stack, api) -> Small:
    return Small(stack, api)


def finished(api, base: str, export_id: str, timeout: float = 90.0) -> dict:
    return poll(lambda: api.get(f"{base}/exports/{export_id}").json["data"],
                lambda export: export["status"] in ("completed", "failed"), f"export {export_id}", timeout)


def artifact(stack, api, base: str, export_id: str) -> zipfile.ZipFile:
    response = api.get(f"{base}/exports/{export_id}/download")
    assert response.status_code == 302, response.json
    url = urllib.parse.urlparse(response.headers["Location"])
    query = urllib.parse.parse_qs(url.query)
    assert "Signature" in query and 3500 < int(query["Expires"][0]) - time.time() <= 3600  # one hour at most
    assert query["response-content-disposition"][0].startswith("attachment; filename=")
    bucket, key = stack.variables["PIXELPOOL_EXPORTS_BUCKET"], urllib.parse.unquote(url.path.split("/", 2)[2])
    body = stack.aws("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return zipfile.ZipFile(io.BytesIO(body))


def export(stack, api, base: str, body: dict) -> tuple[dict, zipfile.ZipFile]:
    created = api.post(f"{base}/exports", body)
    assert created.status_code == 202, created.json
    assert created.json["data"]["status"] == "pending"
    done = finished(api, base, created.json["data"]["id"])
    assert done["status"] == "completed", done
    return done, artifact(stack, api, base, done["id"])


# The four layouts, hand-checked ------------------------------------------------------------------


def test_coco_detection_has_real_paths_sorted_categories_and_loads_in_pycocotools(stack, api, small, tmp_path):
    done, archive = export(stack, api, small.base, {"export_mode": "detection",
                                                     "options": {"bbox_from_polygons": True}})
    document = json.loads(archive.read("annotations.json"))
    n = small.number
    assert document["images"] == [{"id": n[path], "file_name": path, "width": FILES[path][0],
                                   "height": FILES[path][1]} for path in small.order]
    # Issue 12 #14: "indoor" (a classification label) was a detection category; it cannot hold a box.
    assert document["categories"] == [{"id": 1, "name": "cat", "supercategory": ""},
                                      {"id": 2, "name": "dog", "supercategory": ""}]
    expected = small.ordered({
        "zoo/night/c.png": [(n["zoo/night/c.png"], 1, [10.0, 10.0, 40.0, 40.0], 1600.0, 0)],  # polygon as its box
        "zoo/b.jpg": [(n["zoo/b.jpg"], 2, [0.0, 0.0, 80.0, 40.0], 3200.0, 0)],
        "zoo/a.jpg": [(n["zoo/a.jpg"], 1, [10.0, 5.0, 20.0, 10.0], 200.0, 0),  # box
                      (n["zoo/a.jpg"], 2, [0.0, 0.0, 40.0, 20.0], 800.0, 0)],  # polygon as its box
    })
    assert [(a["id"], a["image_id"], a["category_id"], a["bbox"], a["area"], a["iscrowd"])
            for a in document["annotations"]] == [(number + 1, *rest) for number, rest in enumerate(expected)]
    (tmp_path / "coco.json").write_bytes(archive.read("annotations.json"))
    coco = COCO(str(tmp_path / "coco.json"))
    assert (len(coco.getImgIds()), len(coco.getAnnIds()), len(coco.getCatIds())) == (4, 4, 2)
    assert len(coco.getAnnIds(catIds=[1])) == 2 and len(coco.getAnnIds(imgIds=[n["zoo/a.jpg"]])) == 2
    assert done["summary"]["class_distribution"] == {"cat": 2, "dog": 2}
    assert (done["image_count"], done["annotation_count"], done["name"], done["version_number"]) == (
        4, 4, "Detection Export v1", 1)
    assert done["artifact_size_bytes"] > 0 and done["progress"] == {"shards_done": 1, "shards_total": 1}
    assert sorted(archive.namelist()) == ["annotations.json", "export.json"]


def test_coco_segmentation_exports_polygons_with_area_and_boxes_as_polygons(stack, api, small):
    _, archive = export(stack, api, small.base, {"export_mode": "segmentation", "options": {
        "bboxes_as_polygons": True, "labels": ["cat"]}})
    document = json.loads(archive.read("annotations.json"))
    assert document["categories"] == [{"id": 1, "name": "cat", "supercategory": ""}]
    n = small.number
    assert [(a["image_id"], a["segmentation"], a["bbox"], a["area"]) for a in document["annotations"]] == small.ordered({
        "zoo/night/c.png": [(n["zoo/night/c.png"], [[10.0, 10.0, 50.0, 10.0, 50.0, 50.0, 10.0, 50.0]],
                             [10.0, 10.0, 40.0, 40.0], 1600.0)],
        "zoo/a.jpg": [(n["zoo/a.jpg"], [[10.0, 5.0, 30.0, 5.0, 30.0, 15.0, 10.0, 15.0]], [10.0, 5.0, 20.0, 10.0],
                       200.0)]})


def test_yolo_layout_leaves_out_images_in_no_split_and_normalizes_boxes(stack, api, small):
    # Issue 12 #15: the layout was nested by share path (images/train/zoo/a.jpg) with `path: .`;
    # #14: "indoor" (classification) was a class name. Now flat per split, no `path`, box labels only.
    done, archive = export(stack, api, small.base, {"export_mode": "detection", "output_format": "yolo",
                                                     "options": {"include_images": True}})
    assert sorted(archive.namelist()) == [
        "data.yaml", "export.json", "images/train/a.jpg", "images/train/b.jpg",
        "images/val/c.png", "labels/train/a.txt", "labels/train/b.txt", "labels/val/c.txt"]
    assert archive.read("labels/train/a.txt").decode() == "0 0.200000 0.200000 0.200000 0.200000\n"
    assert archive.read("labels/train/b.txt").decode() == "1 0.500000 0.500000 1.000000 1.000000\n"
    assert archive.read("labels/val/c.txt").decode() == ""  # a polygon, not asked as a box
    assert archive.read("data.yaml").decode() == (
        "train: images/train\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    s3 = stack.aws("s3")
    original = s3.get_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="zoo/a.jpg")["Body"].read()
    assert archive.read("images/train/a.jpg") == original
    assert done["summary"]["excluded"] == {"in_no_split": 1}
    assert done["image_count"] == 3


def test_an_image_whose_object_was_deleted_is_excluded_and_the_export_still_completes(stack, api, small):
    # Given a train image whose object is deleted from the share (its record goes `missing`)
    stack.aws("s3").delete_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key="zoo/b.jpg")
    stack.pump.drain()
    body = {"export_mode": "detection", "output_format": "yolo", "options": {"include_images": True}}
    # Then the preview and the built export leave it out, counted, and the rest is exported
    preview = api.post(f"{small.base}/exports/preview", body).json["data"]
    done, archive = export(stack, api, small.base, body)
    assert preview["excluded"] == done["summary"]["excluded"] == {"in_no_split": 1, "missing": 1}
    assert sorted(name for name in archive.namelist() if name.startswith("images/")) == [
        "images/train/a.jpg", "images/val/c.png"]


def test_csv_and_image_folder_take_classes_from_a_tag_category(stack, api, small):
    mapping = {"kind": "categorized", "category": "animal"}
    done, archive = export(stack, api, small.base, {"export_mode": "classification",
                                                     "options": {"class_mapping": mapping}})
    assert archive.read("manifest.csv").decode() == "image_path,class_name,split\n" + "".join(small.ordered({
        "zoo/night/c.png": ["zoo/night/c.png,cat,val\n", "zoo/night/c.png,dog,val\n"],
        "zoo/b.jpg": ["zoo/b.jpg,dog,train\n"], "zoo/a.jpg": ["zoo/a.jpg,cat,train\n"]}))
    assert done["summary"]["excluded"] == {"without_class": 1}
    assert done["summary"]["class_distribution"] == {"cat": 2, "dog": 2}
    assert done["name"] == "Classification Export v1"
    done, archive = export(stack, api, small.base, {"export_mode": "classification", "output_format": "image_folder",
                                                     "name": "folders", "options": {"class_mapping": mapping}})
    assert sorted(name for name in archive.namelist() if name != "export.json") == [
        "train/cat/a.jpg", "train/dog/b.jpg", "val/cat/c.png", "val/dog/c.png"]
    assert (done["name"], done["version_number"]) == ("folders", 2)


def test_free_form_classes_and_label_classes(stack, api, small):
    free = {"kind": "free_form", "classes": {"animal": [small.tags["cat"], small.tags["dog"]],
                                             "bad": [small.tags["blurry"]]}}
    _, archive = export(stack, api, small.base, {"export_mode": "classification", "options": {"class_mapping": free}})
    assert archive.read("manifest.csv").decode().splitlines()[1:] == small.ordered({
        "yard/d.jpg": ["yard/d.jpg,bad,none"], "zoo/night/c.png": ["zoo/night/c.png,animal,val"],
        "zoo/b.jpg": ["zoo/b.jpg,animal,train"], "zoo/a.jpg": ["zoo/a.jpg,animal,train"]})
    _, archive = export(stack, api, small.base, {"export_mode": "classification",
                                                  "options": {"class_mapping": {"kind": "labels"}}})
    assert archive.read("manifest.csv").decode().splitlines()[1:] == ["zoo/a.jpg,indoor,train"]


def test_url_manifest_lines_carry_presigned_urls(stack, api, small):
    _, archive = export(stack, api, small.base, {"export_mode": "detection", "output_format": "url_manifest",
                                                  "filter": {"split": "train"}})
    lines = [json.loads(line) for line in archive.read("manifest.jsonl").decode().splitlines()]
    assert [(line["path"], line["split"], line["labels"], line["width"]) for line in lines] == small.ordered({
        "zoo/b.jpg": [("zoo/b.jpg", "train", ["dog"], 80)],
        "zoo/a.jpg": [("zoo/a.jpg", "train", ["cat", "dog", "indoor"], 100)]})
    url = urllib.parse.urlparse(next(line["url"] for line in lines if line["path"] == "zoo/a.jpg"))
    assert url.path.endswith("/zoo/a.jpg") and "Signature" in urllib.parse.parse_qs(url.query)


# Versions, history, failures ---------------------------------------------------------------------


def test_version_modes_choose_what_the_export_sees(stack, api, small):
    job = small.jobs["zoo/b.jpg"]
    assert api.post(f"/api/v1/jobs/{job}/versions", {"note": "v1"}).status_code == 201
    time.sleep(0.01)
    between = time.time()
    time.sleep(0.01)
    small.annotate("zoo/b.jpg", [{"type": "bbox", "label": "cat", "bbox": [1, 1, 2, 2]},
                                 {"type": "bbox", "label": "cat", "bbox": [3, 3, 2, 2]}])

    def counts(options: dict) -> dict:
        response = api.post(f"{small.base}/exports/preview", {"export_mode": "detection", "options": options,
                                                              "filter": {"task_id": [], "path_prefix": "zoo/b"}})
        assert response.status_code == 200, response.json
        return response.json["data"]["class_distribution"]

    iso = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(between)) + f".{int(between % 1 * 1e6):06d}+00:00"
    assert counts({}) == {"cat": 2}
    assert counts({"version_mode": "job_version"}) == {"dog": 1}
    assert counts({"version_mode": "job_version", "job_versions": {job: 1}}) == {"dog": 1}
    assert counts({"version_mode": "timestamp", "timestamp": iso}) == {"dog": 1}


def test_history_download_and_delete(stack, api, small):
    first, _ = export(stack, api, small.base, {"export_mode": "detection"})
    second, _ = export(stack, api, small.base, {"export_mode": "segmentation"})
    listed = api.get(f"{small.base}/exports").json["data"]
    assert [(e["name"], e["status"]) for e in listed] == [("Segmentation Export v1", "completed"),
                                                          ("Detection Export v1", "completed")]
    assert api.delete(f"{small.base}/exports/{first['id']}").status_code == 200
    assert api.get(f"{small.base}/exports/{first['id']}").status_code == 404
    assert api.get(f"{small.base}/exports/{first['id']}/download").status_code == 404
    bucket = stack.variables["PIXELPOOL_EXPORTS_BUCKET"]
    keys = [o["Key"] for o in stack.aws("s3").list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys and all(f"/{second['id']}/" in key and "/work/" not in key for key in keys)
    activity = [(a["entity_type"], a["action"]) for a in api.get(f"{small.base}/activity?page_size=50").json["data"]]
    assert activity.count(("export", "completed")) == 2 and ("export", "deleted") in activity


def test_a_failing_step_ends_the_export_failed_and_the_next_one_succeeds(stack, api, small):
    # Given an image whose file is gone from the share (the build step's server-side copy fails)
    s3, share = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
    kept = s3.get_object(Bucket=share, Key="zoo/b.jpg")["Body"].read()
    s3.delete_object(Bucket=share, Key="zoo/b.jpg")
    body = {"export_mode": "detection", "options": {"include_images": True}}
    created = api.post(f"{small.base}/exports", body).json["data"]
    failed = finished(api, small.base, created["id"])
    assert failed["status"] == "failed"
    assert "zoo/b.jpg" in failed["error"] and "NoSuchKey" in failed["error"]
    assert api.get(f"{small.base}/exports/{created['id']}/download").status_code == 409
    activity = [(a["action"], a["summary"]) for a in api.get(f"{small.base}/activity?page_size=50").json["data"]]
    assert any(action == "failed" and "Detection Export v1 failed" in summary for action, summary in activity)
    # When the file is back, a new export succeeds with the next version
    s3.put_object(Bucket=share, Key="zoo/b.jpg", Body=kept)
    done, archive = export(stack, api, small.base, body)
    assert done["version_number"] == 2 and "images/zoo/b.jpg" in archive.namelist()


def test_concurrent_creates_get_consecutive_versions(stack, api, small):
    results: list = []

    def create() -> None:
        results.append(api.post(f"{small.base}/exports", {"export_mode": "detection"}))

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(response.status_code == 202 for response in results), [r.json for r in results]
    assert sorted(response.json["data"]["version_number"] for response in results) == [1, 2, 3, 4]
    for response in results:
        assert finished(api, small.base, response.json["data"]["id"])["status"] == "completed"
    segmentation = api.post(f"{small.base}/exports", {"export_mode": "segmentation"}).json["data"]
    assert segmentation["version_number"] == 1  # numbered per mode


@pytest.mark.parametrize("body, field", [
    ({"export_mode": "detection", "output_format": "manifest_csv"}, "output_format"),
    ({"export_mode": "classification"}, "class_mapping"),
    ({"export_mode": "detection", "options": {"version_mode": "timestamp"}}, "timestamp"),
    ({"export_mode": "detection", "options": {"labels": ["unicorn"]}}, "unicorn"),
    ({"export_mode": "detection", "filter": {"min_width": 5, "max_width": 1}}, "max_width"),
    ({"export_mode": "detection", "bogus": 1}, "bogus"),
    ({"export_mode": "detection", "options": {"leak_max_distance": 17}}, "leak_max_distance"),
    ({"export_mode": "classification", "options": {"class_mapping": {"kind": "categorized", "category": "none"}}},
     "category"),
])
def test_bad_requests_are_refused_naming_the_problem_and_create_nothing(api, small, body, field):
    for path in ("exports/preview", "exports"):
        response = api.post(f"{small.base}/{path}", body)
        assert response.status_code in (400, 422), response.json
        assert field in json.dumps(response.json["error"]), response.json
    assert api.get(f"{small.base}/exports").json["data"] == []


@pytest.mark.parametrize("body, field", [
    ({"export_mode": "detection", "output_format": "manifest_csv"}, "output_format"),
    ({"export_mode": "segmentation", "output_format": "yolo"}, "output_format"),
    ({"export_mode": "classification"}, "options"),
    ({"export_mode": "detection", "options": {"class_mapping": {"kind": "labels"}}}, "options"),
    ({"export_mode": "classification", "options": {"class_mapping": {"kind": "free_form"}}},
     "options.class_mapping"),
    ({"export_mode": "detection", "filter": {}, "saved_filter_id": "f"}, "saved_filter_id"),
])
def test_request_rules_are_checked_once_at_the_edge_with_field_details(api, small, body, field):
    # Issue 11 #5: these rules were checked again in the service, answered with the field "body"
    for path in ("exports/preview", "exports"):
        response = api.post(f"{small.base}/{path}", body)
        assert response.status_code == 422, response.json
        assert [detail["field"] for detail in response.json["error"]["details"]] == [field], response.json
        assert response.json["error"]["details"][0]["location"] == "body"


def test_a_saved_filter_selects_what_its_filter_selects(stack, api, small):
    condition = {"tag_ids": [small.tags["dog"]]}
    saved = api.post(f"{small.base}/saved-filters", {"name": "dogs", "filter": condition})
    assert saved.status_code == 201, saved.json
    by_id = api.post(f"{small.base}/exports/preview", {"export_mode": "detection",
                                                        "saved_filter_id": saved.json["data"]["id"]})
    by_filter = api.post(f"{small.base}/exports/preview", {"export_mode": "detection", "filter": condition})
    assert by_id.status_code == 200, by_id.json
    assert by_id.json["data"] == by_filter.json["data"] and by_id.json["data"]["images"] == 2
    done, _ = export(stack, api, small.base, {"export_mode": "detection", "saved_filter_id": saved.json["data"]["id"]})
    assert done["filter"]["tag_ids"] == [small.tags["dog"]] and done["image_count"] == 2
    missing = api.post(f"{small.base}/exports/preview", {"export_mode": "detection", "saved_filter_id": "nope"})
    assert missing.status_code == 404, missing.json


def test_classification_options_list_categories_and_labels(api, small):
    data = api.get(f"{small.base}/exports/classification-options").json["data"]
    assert [(c["name"], [t["name"] for t in c["tags"]]) for c in data["categories"]] == [("animal", ["cat", "dog"])]
    assert [t["name"] for t in data["uncategorized_tags"]] == ["blurry"]
    assert data["labels"] == ["cat", "dog", "indoor"]


# Preview against the artifact, randomized --------------------------------------------------------


def test_preview_counts_equal_the_built_artifact_for_random_filters(stack, api, small):
    rng = random.Random(5)
    for _ in range(4):
        image_filter = {}
        if rng.random() < 0.5:
            image_filter["tag_ids"] = rng.sample(sorted(small.tags.values()), rng.randint(1, 2))
            image_filter["tag_mode"] = rng.choice(["any", "all"])
        if rng.random() < 0.5:
            image_filter["is_annotated"] = rng.random() < 0.5
        if rng.random() < 0.4:
            image_filter["min_width"] = rng.choice([50, 70])
        mode = rng.choice(["detection", "segmentation"])
        body = {"export_mode": mode, "filter": image_filter,
                "options": {"bbox_from_polygons": rng.random() < 0.5, "include_bboxes": rng.random() < 0.5}}
        preview = api.post(f"{small.base}/exports/preview", body).json["data"]
        done, archive = export(stack, api, small.base, body)
        document = json.loads(archive.read("annotations.json"))
        names = {category["id"]: category["name"] for category in document["categories"]}
        built = {}
        for annotation in document["annotations"]:
            built[names[annotation["category_id"]]] = built.get(names[annotation["category_id"]], 0) + 1
        assert (preview["images"], preview["annotations"], preview["class_distribution"]) == (
            len(document["images"]), len(document["annotations"]), built), (body, preview)
        assert {key: done["summary"][key] for key in ("images", "annotations", "split_distribution",
                                                      "class_distribution", "annotation_counts")} == {
            key: preview[key] for key in ("images", "annotations", "split_distribution", "class_distribution",
                                          "annotation_counts")}


# Every mode, format and class mapping: preview == summary == the ZIP ------------------------------


def held(archive: zipfile.ZipFile, output_format: str) -> dict:
    """What the ZIP holds: images (distinct), annotation rows where the format has them, image files."""
    names = [name for name in archive.namelist() if name != "export.json"]
    files = [name for name in names if name.startswith("images/")]
    if output_format == "coco_json":
        document = json.loads(archive.read("annotations.json"))
        return {"images": len(document["images"]), "annotations": len(document["annotations"]), "files": files}
    if output_format == "yolo":
        labels = [name for name in names if name.startswith("labels/")]
        assert sorted(name.replace("labels/", "images/", 1).rsplit(".", 1)[0] for name in labels) == sorted(
            name.rsplit(".", 1)[0] for name in files) or not files  # every image has its label file
        return {"images": len(labels), "annotations": sum(len(archive.read(n).splitlines()) for n in labels),
                "files": files}
    if output_format == "manifest_csv":
        rows = archive.read("manifest.csv").decode().splitlines()[1:]
        return {"images": len({row.rsplit(",", 2)[0] for row in rows}), "annotations": len(rows), "files": files}
    if output_format == "image_folder":  # <split>/<class>/<name>: one file per (image, class)
        return {"images": len({name.rsplit("/", 1)[1] for name in names}), "annotations": len(names),
                "files": [name for name in names]}
    if output_format == "image_text":  # metadata.jsonl per folder, a caption .txt beside each image
        folders = [name for name in names if name.rsplit("/", 1)[-1] == "metadata.jsonl"]
        lines = [line for name in folders for line in archive.read(name).splitlines()]
        captions = [name for name in names if name.endswith(".txt")]
        return {"images": len(lines), "annotations": len(captions),
                "files": [name for name in names if name not in folders and name not in captions]}
    lines = archive.read("manifest.jsonl").decode().splitlines()
    return {"images": len(lines), "annotations": None, "files": files}


def test_preview_summary_and_artifact_agree_for_every_mode_format_and_mapping(stack, api, small):
    # Issue 12 #13: ImageFolder with label classes previewed every image, held only the classed ones,
    # and did not count the rest in `excluded`.
    rng = random.Random(13)
    mappings = {"categorized": {"kind": "categorized", "category": "animal"},
                "free_form": {"kind": "free_form", "classes": {"animal": [small.tags["cat"], small.tags["dog"]],
                                                               "bad": [small.tags["blurry"]]}},
                "labels": {"kind": "labels"}}
    cases = [("classification", fmt, kind) for fmt in ("manifest_csv", "image_folder", "url_manifest")
             for kind in mappings]
    cases += [("detection", fmt, None) for fmt in ("coco_json", "yolo", "url_manifest")]
    cases += [("segmentation", fmt, None) for fmt in ("coco_json", "url_manifest")]
    cases += [("captions", "image_text", None)]
    for path, text in (("zoo/a.jpg", "a cat"), ("zoo/night/c.png", "a cat and a dog"), ("yard/d.jpg", "a yard")):
        assert api.request("PUT", f"/api/v1/shared-images/{small.ids[path]}/caption", {"text": text}).status_code == 200
    for mode, output_format, kind in cases:
        image_filter = rng.choice([{}, {"is_annotated": True}, {"tag_ids": [small.tags["cat"]]},
                                   {"path_prefix": "zoo/"}])
        options = {"include_images": rng.random() < 0.5}
        if kind:
            options["class_mapping"] = mappings[kind]
        elif mode == "detection":
            options["bbox_from_polygons"] = rng.random() < 0.5
        elif mode == "segmentation":
            options.update(include_bboxes=rng.random() < 0.5, bboxes_as_polygons=rng.random() < 0.5)
        if rng.random() < 0.3:
            options["labels"] = rng.sample(["cat", "dog", "indoor"], 2)
        body = {"export_mode": mode, "output_format": output_format, "filter": image_filter, "options": options}
        case = (mode, output_format, kind, body)
        # Given what the filter selects (a COCO detection export leaves no selected image out)
        selected = api.post(f"{small.base}/exports/preview", {"export_mode": "detection",
                                                               "filter": image_filter}).json["data"]["images"]
        # When the export is previewed and built
        preview = api.post(f"{small.base}/exports/preview", body)
        assert preview.status_code == 200, (case, preview.json)
        preview = preview.json["data"]
        done, archive = export(stack, api, small.base, body)
        # Then the three agree, and every selected image is either placed or excluded with a reason
        keys = ("images", "annotations", "annotation_counts", "split_distribution", "class_distribution",
                "excluded")
        assert {key: done["summary"][key] for key in keys} == {key: preview[key] for key in keys}, case
        assert preview["images"] + sum(preview["excluded"].values()) == selected, (case, preview)
        found = held(archive, output_format)
        assert found["images"] == preview["images"], (case, preview, archive.namelist())
        if found["annotations"] is not None:
            assert found["annotations"] == preview["annotations"], (case, preview, archive.namelist())
        if (options["include_images"] or output_format == "image_text") and output_format != "image_folder":
            assert len(found["files"]) == preview["images"], (case, archive.namelist())


def test_image_folder_with_label_classes_holds_and_counts_only_classed_images(stack, api, small):
    body = {"export_mode": "classification", "output_format": "image_folder",
            "options": {"class_mapping": {"kind": "labels"}}}
    preview = api.post(f"{small.base}/exports/preview", body).json["data"]
    done, archive = export(stack, api, small.base, body)
    assert (preview["images"], preview["excluded"]) == (1, {"in_no_split": 1, "without_class": 2})
    assert done["summary"]["excluded"] == preview["excluded"] and done["image_count"] == 1
    assert sorted(archive.namelist()) == ["export.json", "train/indoor/a.jpg"]


# Categories from label types -----------------------------------------------------------------------


def test_categories_are_the_labels_that_can_hold_what_the_export_writes(stack, api, small):
    # Given labels of every type (the project's "cat", "dog" are `any`, "indoor" classification)
    labels = LABELS + [{"name": "box", "annotation_type": "bbox"}, {"name": "shape", "annotation_type": "polygon"}]
    changed = api.patch(small.base, {"labels": labels})
    assert changed.status_code == 200, changed.json

    def names(body: dict) -> list[str]:
        _, archive = export(stack, api, small.base, body)
        if body.get("output_format") == "yolo":
            import yaml
            return list(yaml.safe_load(archive.read("data.yaml"))["names"].values())
        return [c["name"] for c in json.loads(archive.read("annotations.json"))["categories"]]

    detection = {"export_mode": "detection"}
    assert names(detection) == ["box", "cat", "dog"]
    assert names({**detection, "output_format": "yolo"}) == ["box", "cat", "dog"]
    assert names({**detection, "options": {"bbox_from_polygons": True}}) == ["box", "cat", "dog", "shape"]
    assert names({"export_mode": "segmentation", "options": {"include_bboxes": False}}) == ["cat", "dog", "shape"]
    assert names({"export_mode": "segmentation"}) == ["box", "cat", "dog", "shape"]


# Member names and image pixels ----------------------------------------------------------------------


def project_with(stack, api, files: dict[str, bytes], annotations: dict[str, list[dict]] | None = None,
                 folders: list[str] | None = None) -> dict:
    """A project holding `files` (put straight into the share, then registered, by path or by
    `folders`) in one train task."""
    for key, body in files.items():
        put(stack, key, body)
    registered = api.post("/api/v1/shared-images/register", {"file_paths": folders or list(files)})
    assert registered.status_code == 200, registered.json
    ids = {image["file_path"]: image["id"] for image in registered.json["data"]["registered"]}
    assert set(ids) == set(files), registered.json
    project = api.post(PROJECTS, {"name": f"p{len(ids)}", "labels": [{"name": "cat", "annotation_type": "bbox"}]})
    base = f"{PROJECTS}/{project.json['data']['id']}"
    assert api.post(f"{base}/images", {"shared_image_ids": list(ids.values())}).status_code == 200
    task = api.post(f"{base}/tasks", {"name": "t", "chunk_size": 50, "split": "train",
                                      "shared_image_ids": list(ids.values())})
    assert task.status_code == 201, task.json
    job = task.json["data"]["jobs"][0]["id"]
    for key, found in (annotations or {}).items():
        saved = api.request("PUT", f"/api/v1/jobs/{job}/images/{ids[key]}/annotations", {"annotations": found})
        assert saved.status_code == 200, saved.json
    return {"base": base, "ids": ids, "job": job}


def test_unsafe_object_keys_never_become_member_names(stack, api):
    # Given objects whose keys climb out of any folder, or hide their name behind a bidi override,
    # beside a safe image in the same folders
    escape, bidi = "a/z/../../../../tmp/evil.png", "safe/cat\u202egnp.jpg"
    put(stack, escape, imagefiles.picture(40, 30, seed=1, fmt="PNG"))
    put(stack, bidi, imagefiles.picture(40, 30, seed=2))
    made = project_with(stack, api, {"safe/ok.jpg": imagefiles.picture(40, 30, seed=3)})
    # When their folders are registered
    assert api.post("/api/v1/shared-images/register", {"file_paths": ["a/", "safe/"]}).status_code == 200
    # Then the unsafe objects are recorded failed, with the reason, and never offered as images
    failed = {image["file_path"]: image["reason"]
              for image in api.get("/api/v1/shared-images?status=failed&page_size=200").json["data"]}
    assert set(failed) == {escape, bidi} and all("unsafe" in reason for reason in failed.values()), failed
    for body in ({"export_mode": "detection", "options": {"include_images": True}},
                 {"export_mode": "detection", "output_format": "yolo", "options": {"include_images": True}},
                 {"export_mode": "segmentation", "options": {"include_images": True}},
                 {"export_mode": "detection", "output_format": "url_manifest", "options": {"include_images": True}}):
        # And an export with images holds the safe image only, under a safe member name
        _, archive = export(stack, api, made["base"], body)
        for name in archive.namelist():
            parts = name.split("/")
            assert not name.startswith("/") and "\\" not in name and ".." not in parts and "" not in parts, name
            assert not any(ord(c) < 32 or c in "\u202e\u202d\u200e\u200f\u2066\u2067\u2068\u2069" for c in name), name
        assert len([n for n in archive.namelist() if n.startswith("images/")]) == 1, archive.namelist()


def test_images_are_exported_in_their_displayed_frame_unless_raw(stack, api):
    # Given a JPEG stored 120×80 with EXIF orientation 6 (shown 80×120), annotated in that frame,
    # and an upright image beside it
    rotated = imagefiles.oriented(120, 80, 6, seed=3)
    upright = imagefiles.picture(50, 40, seed=4)
    made = project_with(stack, api, {"exif/rotated.jpg": rotated, "exif/upright.jpg": upright},
                        {"exif/rotated.jpg": [{"type": "bbox", "label": "cat", "bbox": [0, 0, 80, 120]}]})
    body = {"export_mode": "detection", "output_format": "yolo", "options": {"include_images": True}}
    # When exported with images
    _, archive = export(stack, api, made["base"], body)
    # Then the rotated image's pixels are in the displayed frame, with no orientation flag left,
    # its blue stored top-left corner now top-right; the upright image is the stored bytes
    from PIL import Image
    shown = Image.open(io.BytesIO(archive.read("images/train/rotated.jpg")))
    assert shown.size == (80, 120) and shown.getexif().get(0x0112) in (None, 1)
    red, green, blue = shown.getpixel((75, 5))
    assert blue > 200 and red < 60 and green < 60, shown.getpixel((75, 5))
    assert archive.read("labels/train/rotated.txt").decode() == "0 0.500000 0.500000 1.000000 1.000000\n"
    assert archive.read("images/train/upright.jpg") == upright
    # And with raw_images the stored bytes, flag included
    _, archive = export(stack, api, made["base"], {**body, "options": {"include_images": True, "raw_images": True}})
    assert archive.read("images/train/rotated.jpg") == rotated
