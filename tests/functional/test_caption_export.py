"""Captions exports end to end on the emulator's Step Functions: image + same-stem `.txt` pairs and
a `metadata.jsonl` per split folder (Hugging Face imagefolder), captions read from the image
records when the export is built, uncaptioned images and images beside split folders left out and
counted, names unique across share folders, and wrong mode/format pairs refused."""
from __future__ import annotations

import json
import zipfile

import pytest

from tests import imagefiles
from tests.functional.test_exports import Small, export, project_with

SI = "/api/v1/shared-images"
CAPTIONS = {"export_mode": "captions"}


@pytest.fixture
def small(stack, api) -> Small:
    return Small(stack, api)


def caption(api, image_id: str, body: dict) -> None:
    response = api.request("PUT", f"{SI}/{image_id}/caption", body)
    assert response.status_code == 200, response.json


def metadata(archive: zipfile.ZipFile, name: str) -> list[dict]:
    return [json.loads(line) for line in archive.read(name).decode().splitlines()]


def share_bytes(stack, key: str) -> bytes:
    return stack.aws("s3").get_object(Bucket=stack.variables["PIXELPOOL_SHARE_BUCKET"], Key=key)["Body"].read()


def test_each_captioned_image_is_paired_with_its_text_in_its_split_folder(stack, api, small, tmp_path):
    # Given a (train) and c (val) with captions, b (train) without, d (no split) with one
    caption(api, small.ids["zoo/a.jpg"], {"text": "A tabby cat on a red mat"})
    caption(api, small.ids["zoo/night/c.png"], {"tags": ["cat", "dog", "night"]})
    caption(api, small.ids["yard/d.jpg"], {"text": "a blurry yard"})
    # When the project is exported as captions (the mode's one format by default)
    preview = api.post(f"{small.base}/exports/preview", CAPTIONS).json["data"]
    done, archive = export(stack, api, small.base, CAPTIONS)
    # Then each captioned image in a split sits beside a .txt of its stem holding the caption
    assert done["output_format"] == "image_text" and done["name"] == "Captions Export v1"
    assert sorted(archive.namelist()) == ["export.json", "train/a.jpg", "train/a.txt", "train/metadata.jsonl",
                                          "val/c.png", "val/c.txt", "val/metadata.jsonl"]
    assert archive.read("train/a.txt").decode() == "A tabby cat on a red mat"
    assert archive.read("val/c.txt").decode() == "cat, dog, night"
    assert archive.read("train/a.jpg") == share_bytes(stack, "zoo/a.jpg")
    assert archive.read("val/c.png") == share_bytes(stack, "zoo/night/c.png")
    # And each split's metadata.jsonl names its images relative to itself, with their text
    assert metadata(archive, "train/metadata.jsonl") == [{"file_name": "a.jpg", "text": "A tabby cat on a red mat"}]
    assert metadata(archive, "val/metadata.jsonl") == [{"file_name": "c.png", "text": "cat, dog, night"}]
    # And the uncaptioned image and the one that would sit beside the split folders are counted out
    assert done["summary"]["excluded"] == {"in_no_split": 1, "without_caption": 1}
    assert (done["image_count"], done["annotation_count"], done["summary"]["annotation_counts"]) == (
        2, 2, {"caption": 2})
    assert done["summary"]["split_distribution"] == {"train": 1, "val": 1}
    keys = ("images", "annotations", "annotation_counts", "split_distribution", "class_distribution", "excluded")
    assert {key: preview[key] for key in keys} == {key: done["summary"][key] for key in keys}
    # And it unpacks into folders where each image's caption file sits beside it
    archive.extractall(tmp_path / "captions")
    assert (tmp_path / "captions/val/c.txt").read_text() == "cat, dog, night"
    assert (tmp_path / "captions/val/c.png").read_bytes() == share_bytes(stack, "zoo/night/c.png")


def test_images_in_no_split_make_one_dataset_at_the_root(stack, api, small, tmp_path):
    # Given captions on d (in no task) and on a (train)
    caption(api, small.ids["yard/d.jpg"], {"text": "a blurry yard"})
    caption(api, small.ids["zoo/a.jpg"], {"text": "a cat"})
    # When the filter selects only images in no split
    done, archive = export(stack, api, small.base, {**CAPTIONS, "filter": {"split": "none"}})
    # Then they are at the root, with one metadata.jsonl
    assert sorted(archive.namelist()) == ["d.jpg", "d.txt", "export.json", "metadata.jsonl"]
    assert archive.read("d.txt").decode() == "a blurry yard"
    assert metadata(archive, "metadata.jsonl") == [{"file_name": "d.jpg", "text": "a blurry yard"}]
    assert done["summary"]["excluded"] == {} and done["summary"]["split_distribution"] == {"none": 1}
    archive.extractall(tmp_path / "flat")
    assert (tmp_path / "flat/d.txt").read_text() == "a blurry yard"


def test_the_caption_is_the_image_records_when_the_export_is_built(stack, api, small):
    # Given a caption written, then replaced, and another written, then removed
    caption(api, small.ids["zoo/a.jpg"], {"text": "first words"})
    caption(api, small.ids["zoo/a.jpg"], {"text": "second words"})
    caption(api, small.ids["zoo/b.jpg"], {"text": "gone soon"})
    assert api.delete(f"{SI}/{small.ids['zoo/b.jpg']}/caption").status_code == 200
    # When exported
    done, archive = export(stack, api, small.base, {**CAPTIONS, "filter": {"split": "train"}})
    # Then the export holds the current caption, and the image whose caption was removed is counted out
    assert archive.read("train/a.txt").decode() == "second words"
    assert "train/b.jpg" not in archive.namelist()
    assert done["summary"]["excluded"] == {"without_caption": 1}


def test_names_that_meet_across_share_folders_stay_unique_pairs(stack, api, tmp_path):
    # Given three images of one split whose stems meet: x.jpg in two folders and X.png
    made = project_with(stack, api, {"zoo/x.jpg": imagefiles.picture(30, 20, seed=1),
                                     "yard/x.jpg": imagefiles.picture(30, 20, seed=2),
                                     "yard/X.png": imagefiles.picture(30, 20, seed=3, fmt="PNG")})
    for n, path in enumerate(("zoo/x.jpg", "yard/x.jpg", "yard/X.png")):
        caption(api, made["ids"][path], {"text": f"caption {n} of {path}"})
    # When exported as captions
    done, archive = export(stack, api, made["base"], CAPTIONS)
    # Then every image has its own name and its own caption file, and the metadata pairs them the same way
    lines = metadata(archive, "train/metadata.jsonl")
    images = [line["file_name"] for line in lines]
    assert len({name.rsplit(".", 1)[0].casefold() for name in images}) == 3, images
    for line in lines:
        name = f"train/{line['file_name']}"
        stem = name.rsplit(".", 1)[0]
        assert archive.read(f"{stem}.txt").decode() == line["text"]
        path = line["text"].rsplit(" of ", 1)[1]
        assert archive.read(name) == share_bytes(stack, path), (name, path)
    assert sorted(archive.namelist()) == sorted(["export.json", "train/metadata.jsonl", *(
        f"train/{name}" for name in images), *(f"train/{name.rsplit('.', 1)[0]}.txt" for name in images)])
    assert done["image_count"] == 3
    archive.extractall(tmp_path / "pairs")
    assert sorted(path.name for path in (tmp_path / "pairs/train").iterdir()) == sorted(
        ["metadata.jsonl", *images, *(f"{name.rsplit('.', 1)[0]}.txt" for name in images)])


@pytest.mark.parametrize("body, field", [
    ({"export_mode": "captions", "output_format": "coco_json"}, "output_format"),
    ({"export_mode": "captions", "output_format": "image_folder"}, "output_format"),
    ({"export_mode": "detection", "output_format": "image_text"}, "output_format"),
    ({"export_mode": "classification", "output_format": "image_text",
      "options": {"class_mapping": {"kind": "labels"}}}, "output_format"),
    ({"export_mode": "captions", "options": {"class_mapping": {"kind": "labels"}}}, "options"),
])
def test_a_wrong_mode_and_format_pair_is_refused_naming_the_field(api, small, body, field):
    for path in ("exports/preview", "exports"):
        response = api.post(f"{small.base}/{path}", body)
        assert response.status_code == 422, response.json
        assert [detail["field"] for detail in response.json["error"]["details"]] == [field], response.json
    assert api.get(f"{small.base}/exports").json["data"] == []
