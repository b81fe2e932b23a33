"""Split leaks end to end: real photos (one stored twice, one cropped) and one image in two tasks,
through `GET …/split-leaks`, export previews and a built export that leaves the later copies out."""
from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from chalicelib.services.container import services
from tests.conftest import ROOT, Api
from tests.functional.test_exports import artifact, finished
from tests.imagefiles import real

PROJECTS = "/api/v1/projects"
LABELS = [{"name": "cat", "annotation_type": "any"}]


def cropped(name: str, border: int) -> bytes:
    """The photo with `border` pixels cut off each side, as a JPEG: a near copy, not the same bytes."""
    image = Image.open(io.BytesIO(real(name))).convert("RGB")
    buffer = io.BytesIO()
    image.crop((border, border, image.width - border, image.height - border)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


FILES = {
    "leaks/cat.png": real("chelsea.png"),
    "leaks/copy/cat.png": real("chelsea.png"),  # the same bytes under another key
    "leaks/cat-crop.jpg": cropped("chelsea.png", 10),
    "leaks/coffee.png": real("coffee.png"),
    "leaks/camera.png": real("camera.png"),
    "leaks/camera-again.png": real("camera.png"),  # same bytes, same split: no leak
    "leaks/brick.png": real("brick.png"),
    "leaks/rocket.jpg": real("rocket.jpg"),
}
# coffee.png sits in the train and the val task
SPLITS = {"train": ["leaks/cat.png", "leaks/coffee.png", "leaks/camera.png", "leaks/camera-again.png"],
          "val": ["leaks/copy/cat.png", "leaks/coffee.png", "leaks/brick.png"],
          "test": ["leaks/cat-crop.jpg", "leaks/rocket.jpg"]}


class Leaky:
    def __init__(self, stack, api: Api) -> None:
        self.api = api
        s3, bucket = stack.aws("s3"), stack.variables["PIXELPOOL_SHARE_BUCKET"]
        for key, body in FILES.items():
            s3.put_object(Bucket=bucket, Key=key, Body=body)
        registered = api.post("/api/v1/shared-images/register", {"file_paths": list(FILES)}).json["data"]
        self.ids = {image["file_path"]: image["id"] for image in registered["registered"]}
        assert set(self.ids) == set(FILES), registered
        phash = {image["file_path"]: int(image["perceptual_hash"], 16) for image in registered["registered"]}
        self.crop_distance = (phash["leaks/cat.png"] ^ phash["leaks/cat-crop.jpg"]).bit_count()
        assert 0 < self.crop_distance <= 4, self.crop_distance  # a near copy within the default distance
        self.project, self.tasks = self.new_project()

    def new_project(self) -> tuple[str, dict[str, str]]:
        """A project holding every file, in a task per split (SPLITS); its id and split → task id."""
        project = self.api.post(PROJECTS, {"name": "Leaky", "labels": LABELS}).json["data"]["id"]
        base = f"{PROJECTS}/{project}"
        assert self.api.post(f"{base}/images", {"shared_image_ids": list(self.ids.values())}).status_code == 200
        tasks = {}
        for split, paths in SPLITS.items():
            created = self.api.post(f"{base}/tasks", {"name": split, "split": split,
                                                      "shared_image_ids": [self.ids[path] for path in paths]})
            assert created.status_code == 201, created.json
            tasks[split] = created.json["data"]["task"]["id"]
        return project, tasks

    def base(self, project: str | None = None) -> str:
        return f"{PROJECTS}/{project or self.project}"

    def leaks(self, query: str = "", project: str | None = None):
        return self.api.get(f"{self.base(project)}/split-leaks{query}")


@pytest.fixture(scope="module")
def leaky(local_stack):
    from chalice.test import Client

    local_stack.reset()
    with Client(local_stack.app, stage_name="dev", project_dir=str(ROOT)) as client:
        yield Leaky(local_stack, Api(client, local_stack.token(sub="alice", email="alice@example.com", groups=[])))


def pairs(leaks: list[dict]) -> list[tuple]:
    return [(leak["kind"], leak["distance"], leak["earlier"]["file_path"], leak["earlier"]["split"],
             leak["later"]["file_path"], leak["later"]["split"]) for leak in leaks]


def test_split_leaks_lists_the_same_image_exact_and_near_copies_across_splits(leaky):
    # When the project's leaks are asked for (default distance 4)
    response = leaky.leaks()
    # Then: coffee in train and val; cat.png stored twice (train, val); the crop (test) near both;
    # camera stored twice but only in train is no leak, nor are the unrelated photos
    assert response.status_code == 200, response.json
    data, d = response.json["data"], leaky.crop_distance
    assert pairs(data["leaks"]) == [
        ("same_image", 0, "leaks/coffee.png", "train", "leaks/coffee.png", "val"),
        ("exact", 0, "leaks/cat.png", "train", "leaks/copy/cat.png", "val"),
        ("near", d, "leaks/cat.png", "train", "leaks/cat-crop.jpg", "test"),
        ("near", d, "leaks/copy/cat.png", "val", "leaks/cat-crop.jpg", "test")]
    assert data["leaks"][1]["earlier"]["image_id"] == leaky.ids["leaks/cat.png"]
    assert (data["max_distance"], data["counts"]) == (4, {"same_image": 1, "exact": 1, "near": 2})
    assert response.json["meta"] == {"total": 4, "page": 1, "page_size": 50}


def test_a_smaller_distance_keeps_exact_copies_and_loses_the_farther_near_ones(leaky):
    # When the distance is just below the crop's
    data = leaky.leaks(f"?max_distance={leaky.crop_distance - 1}").json["data"]
    # Then only the same image and the exact copy remain
    assert data["counts"] == {"same_image": 1, "exact": 1, "near": 0}


def test_leaks_come_a_page_at_a_time_in_the_same_order(leaky):
    # When the list is read two at a time
    first, second = (leaky.leaks(f"?page={page}&page_size=2").json for page in (1, 2))
    # Then the pages are the whole list, in order, and each counts all of it
    whole = leaky.leaks().json["data"]["leaks"]
    assert first["data"]["leaks"] + second["data"]["leaks"] == whole
    assert first["meta"] == {"total": 4, "page": 1, "page_size": 2} and second["data"]["counts"]["near"] == 2


@pytest.mark.parametrize("value", ["-1", "17", "four", "2.5"])
def test_a_max_distance_outside_0_to_16_is_refused_naming_it(leaky, value):
    # When the distance is out of range or no integer
    response = leaky.leaks(f"?max_distance={value}")
    # Then the request is refused (a query field, as every invalid field: 422) naming the parameter
    assert response.status_code == 422, response.json
    assert "max_distance" in response.json["error"]["message"]
    assert [detail["field"] for detail in response.json["error"]["details"]] == ["max_distance"]


def test_a_changed_split_changes_the_leaks_at_once(leaky):
    # Given a project of its own, whose test task then becomes a train task
    project, tasks = leaky.new_project()
    changed = leaky.api.patch(f"{leaky.base(project)}/tasks/{tasks['test']}", {"split": "train"})
    assert changed.status_code == 200, changed.json
    # When its leaks are asked for right after
    data = leaky.leaks(project=project).json["data"]
    # Then the crop leaks only against the val copy (the train original is in its own split now)
    assert [(leak["earlier"]["file_path"], leak["later"]["file_path"]) for leak in data["leaks"]
            if leak["kind"] == "near"] == [("leaks/cat-crop.jpg", "leaks/copy/cat.png")]


# Exports ------------------------------------------------------------------------------------------------

DETECTION = {"export_mode": "detection", "output_format": "coco_json"}


def test_export_preview_reports_the_leaks_among_the_exported_images(leaky):
    # When a detection export of the whole pool is previewed
    preview = leaky.api.post(f"{leaky.base()}/exports/preview", DETECTION)
    # Then its leaks section names the pairs on the split each image is exported in, and nothing is
    # left out (exclude_leaks is off)
    assert preview.status_code == 200, preview.json
    data = preview.json["data"]
    assert data["leaks"]["counts"] == {"same_image": 1, "exact": 1, "near": 2}
    assert pairs(data["leaks"]["pairs"]) == pairs(leaky.leaks().json["data"]["leaks"])
    assert (data["images"], data["excluded"], data["leaks"]["dropped"]) == (len(FILES), {}, [])


def test_a_filtered_preview_sees_only_the_leaks_among_what_it_exports(leaky):
    # When the export takes only the train and test images
    preview = leaky.api.post(f"{leaky.base()}/exports/preview",
                             {**DETECTION, "filter": {"task_id": [leaky.tasks["train"], leaky.tasks["test"]]},
                              "options": {"exclude_leaks": True}}).json["data"]
    # Then the val copy is not there: one near pair (coffee is exported once, in train, but sits in
    # two splits), and only the crop is left out
    assert preview["leaks"]["counts"] == {"same_image": 1, "exact": 0, "near": 1}
    assert [side["file_path"] for side in preview["leaks"]["dropped"]] == ["leaks/cat-crop.jpg"]
    assert preview["excluded"] == {"copy_in_earlier_split": 1}


@pytest.fixture
def shards_of_three():
    """Exports cut into shards of 3 images, so pairs of copies fall in different shards."""
    exports = services().exports
    exports.shard_size, kept = 3, exports.shard_size
    yield
    exports.shard_size = kept


def test_an_export_excluding_leaks_leaves_out_the_later_copies_as_its_preview_said(local_stack, leaky,
                                                                                  shards_of_three):
    # Given the preview of an export that excludes leaks, with the images in the artifact
    body = {**DETECTION, "options": {"exclude_leaks": True, "include_images": True}}
    preview = leaky.api.post(f"{leaky.base()}/exports/preview", body).json["data"]
    # When it is built, a few images per shard
    created = leaky.api.post(f"{leaky.base()}/exports", body)
    assert created.status_code == 202, created.json
    done = finished(leaky.api, leaky.base(), created.json["data"]["id"])
    assert done["status"] == "completed", done
    assert done["progress"] == {"shards_done": 2, "shards_total": 2}
    archive = artifact(local_stack, leaky.api, leaky.base(), done["id"])
    # Then the later-split copies (the val copy of cat.png, the test crop) are neither in the COCO
    # file nor among the image files; the rest are; `excluded` counts them and `leaks` names them
    dropped = {"leaks/copy/cat.png", "leaks/cat-crop.jpg"}
    document = json.loads(archive.read("annotations.json"))
    assert {image["file_name"] for image in document["images"]} == set(FILES) - dropped
    assert not any(name.endswith(("copy/cat.png", "cat-crop.jpg")) for name in archive.namelist())
    assert preview["excluded"] == done["summary"]["excluded"] == {"copy_in_earlier_split": 2}
    assert {side["file_path"] for side in done["summary"]["leaks"]["dropped"]} == dropped
    assert done["summary"]["leaks"] == preview["leaks"]
    assert done["summary"]["images"] == preview["images"] == len(FILES) - 2
    assert json.loads(archive.read("export.json"))["summary"]["leaks"] == preview["leaks"]
