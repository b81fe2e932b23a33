"""Every export format writer through one archive: member names safe for any object key, and
categories chosen by label type. No AWS: the work folder is a dict."""
from __future__ import annotations

import io
import json
import zipfile

import pytest

from chalicelib.formats import ExportImage, Shape
from chalicelib.services.export_contents import categories
from chalicelib.services.export_formats import FORMAT_WRITERS, Archive, Parts, Shard
from chalicelib.services.export_spec import FORMATS, ExportSpec


class Objects:
    """The few Bucket calls writers make, over a dict."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.objects[key] = data

    def lines(self, key: str):
        yield from self.objects.get(key, b"").split(b"\n")

    def open(self, key: str):
        return (None, iter([self.objects[key]])) if key in self.objects else None

    def presign_get(self, key: str, expires_in: int, **kwargs) -> str:
        return f"https://share.example/{key}?X-Amz-Expires={expires_in}"


UNSAFE = ("a/z/../../../../tmp/evil.png", "/etc/cron.d/x.jpg", "..\\..\\win.jpg", "safe/cat\u202egnp.jpg",
          "ctl/\x1b[2Jx.jpg", "c:/drive.jpg")
RECORDS = [ExportImage(n + 1, f"{n:08x}-image", path, 40, 30, "train", ("cat",),
                       (Shape("bbox", "cat", bbox=(1, 1, 10, 10)),), caption="a cat") for n, path in enumerate(UNSAFE)]


def build(output_format: str, mode: str) -> zipfile.ZipFile:
    options = {"include_images": True}
    if mode == "classification":
        options["class_mapping"] = {"kind": "labels"}
    spec = ExportSpec.model_validate({"export_mode": mode, "output_format": output_format, "options": options})
    writer, objects = FORMAT_WRITERS[output_format], Objects()
    entries = None if mode == "classification" else [[{"image_id": r.number, "category_id": 1, "bbox": [1, 1, 10, 10],
                                                       "area": 100, "iscrowd": 0, "segmentation": []}]
                                                     for r in RECORDS]
    writer.part(Shard(objects, objects, "work/part-00000"), spec, ["cat"], RECORDS, entries)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        archive = Archive(zipped)
        named = writer.body(archive, Parts(objects, "work", [0]), spec, ["cat"])
        for record, path in writer.placements(RECORDS):
            archive.write(named.get(record.number, path), b"pixels", record.image_id)
    return zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("mode, output_format", [(mode, fmt) for mode, fmts in FORMATS.items() for fmt in fmts])
def test_no_format_writes_an_unsafe_member_name(mode, output_format):
    archive = build(output_format, mode)
    names = archive.namelist()
    assert len(names) == len(set(name.casefold() for name in names))
    for name in names:
        parts = name.split("/")
        assert not name.startswith("/") and "\\" not in name and ":" not in name, name
        assert ".." not in parts and "" not in parts and "." not in parts, name
        assert all(ch.isprintable() and ch not in "\u202e\u202d\u2066\u2067\u2068\u2069" for ch in name), name
    assert len([n for n in names if n.endswith(("jpg", "png", "gnp"))]) >= len(RECORDS)


def test_archive_renames_a_second_member_of_the_same_name():
    with zipfile.ZipFile(io.BytesIO(), "w") as zipped:
        archive = Archive(zipped)
        assert [archive.claim(path, "abcdef123") for path in ("images/x.jpg", "images/X.jpg", "images/x.jpg")] == [
            "images/x.jpg", "images/X-abcdef12.jpg", "images/x-abcdef12-2.jpg"]


LABELS = [{"name": "any", "annotation_type": "any"}, {"name": "box", "annotation_type": "bbox"},
          {"name": "shape", "annotation_type": "polygon"}, {"name": "scene", "annotation_type": "classification"}]


@pytest.mark.parametrize("mode, options, expected", [
    ("detection", {}, ["any", "box"]),
    ("detection", {"bbox_from_polygons": True}, ["any", "box", "shape"]),
    ("segmentation", {}, ["any", "box", "shape"]),
    ("segmentation", {"include_bboxes": False}, ["any", "shape"]),
    ("segmentation", {"include_bboxes": False, "bboxes_as_polygons": True}, ["any", "box", "shape"]),
])
def test_categories_are_the_labels_that_can_hold_what_is_exported(mode, options, expected):
    spec = ExportSpec.model_validate({"export_mode": mode, "output_format": "coco_json", "options": options})
    assert categories(LABELS, spec) == expected



def image_text(records: list[ExportImage]) -> tuple[dict[int, str], zipfile.ZipFile]:
    """The image_text writer's part and body over `records`: image names, and the ZIP without images."""
    spec = ExportSpec.model_validate({"export_mode": "captions", "output_format": "image_text"})
    writer, objects = FORMAT_WRITERS[spec.output_format], Objects()
    writer.part(Shard(objects, objects, "work/part-00000"), spec, [], records, None)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zipped:
        named = writer.body(Archive(zipped), Parts(objects, "work", [0]), spec, [])
    return named, zipfile.ZipFile(io.BytesIO(buffer.getvalue()))


def test_image_text_gives_every_image_a_caption_file_of_its_own_stem_and_metadata_per_split():
    # Given images whose stems meet in one split (x.jpg from two folders, X.png) and one in another
    records = [ExportImage(1, "aaaaaaaa1", "zoo/x.jpg", 4, 4, "train", caption="first"),
               ExportImage(2, "bbbbbbbb2", "yard/x.jpg", 4, 4, "train", caption="second\nline \u00e9"),
               ExportImage(3, "cccccccc3", "yard/X.png", 4, 4, "train", caption="third"),
               ExportImage(4, "dddddddd4", "zoo/x.jpg", 4, 4, "val", caption="fourth")]
    # When the writer builds its part and the body
    named, archive = image_text(records)
    # Then each image has a unique name and a caption file of the same stem beside it
    assert named == {1: "train/x.jpg", 2: "train/x__bbbbbbbb.jpg", 3: "train/X__cccccccc.png", 4: "val/x.jpg"}
    assert sorted(archive.namelist()) == ["train/X__cccccccc.txt", "train/metadata.jsonl", "train/x.txt",
                                          "train/x__bbbbbbbb.txt", "val/metadata.jsonl", "val/x.txt"]
    assert archive.read("train/x__bbbbbbbb.txt").decode() == "second\nline \u00e9"
    # And each split's metadata names its images relative to itself, in the export's order
    assert [json.loads(line) for line in archive.read("train/metadata.jsonl").decode().splitlines()] == [
        {"file_name": "x.jpg", "text": "first"}, {"file_name": "x__bbbbbbbb.jpg", "text": "second\nline \u00e9"},
        {"file_name": "X__cccccccc.png", "text": "third"}]
    assert archive.read("val/metadata.jsonl").decode() == '{"file_name":"x.jpg","text":"fourth"}\n'


def test_image_text_of_images_in_no_split_is_one_folder_at_the_root():
    named, archive = image_text([ExportImage(1, "aaaaaaaa1", "a/b/c.jpg", 4, 4, "none", caption="c")])
    assert named == {1: "c.jpg"}
    assert sorted(archive.namelist()) == ["c.txt", "metadata.jsonl"]
    assert json.loads(archive.read("metadata.jsonl")) == {"file_name": "c.jpg", "text": "c"}
